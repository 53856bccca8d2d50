"""Reading a runtime's status report: what nvidia-smi and the sync's files may say, as the runtime prints them."""

from __future__ import annotations

import json
import os
import subprocess

from colabssh_cli.commands.status_view import gpu_text, report_lines, sparkline, sync_text
from colabssh_cli.runtime_status import Gpu, LastSync, RuntimeStatus, parse_gpu, parse_report, script


def test_a_field_the_board_cannot_report_is_none_however_nvidia_smi_says_it():
    assert parse_gpu("NVIDIA A100-SXM4-40GB, [Not Supported], 1024, 40960, [N/A], [Unknown Error]") == Gpu(
        "NVIDIA A100-SXM4-40GB", None, 1024, 40960, None, None)
    assert parse_gpu("Board, with a comma, 7, 1, 2, 30, 71.456") == Gpu("Board, with a comma", 7, 1, 2, 30, 71.5)
    assert parse_gpu("Tesla T4") == Gpu("Tesla T4")  # an nvidia-smi that answered the name only
    assert parse_gpu(", 1, 2, 3, 4, 5") is None


def test_text_leaves_out_the_power_it_does_not_know_and_marks_the_rest():
    assert gpu_text(Gpu("Tesla T4", None, 5, 15360, None, None)) == "Tesla T4  ?  5 of 15360 MiB  ?"


def test_the_sparkline_spans_empty_to_full_and_keeps_gaps():
    assert sparkline([0, 14, 50, 100, None, 99]) == "▁▂▅█ █"


def test_the_last_sync_in_each_state():
    def last(lines: str) -> LastSync | None:
        return parse_report(RuntimeStatus("colab", "here", True), "now=1000\n" + lines).last_sync

    assert last("") is None
    assert last('sync_result={"exit": 0, "ended": 940.5, "cancelled": false}') == LastSync("succeeded", 59.5, 0)
    assert last('sync_result={"exit": 23, "ended": 400, "cancelled": false}') == LastSync("failed", 600, 23)
    assert last('sync_result={"exit": 1, "ended": 999, "cancelled": true}').state == "cancelled"
    assert last("sync_result=\nsync_lock=held") == LastSync("running")
    assert last("sync_result=\nsync_lock=free") == LastSync("interrupted")
    assert sync_text(LastSync("failed", 600, 23)) == "10 min ago (failed, exit 23)"
    assert sync_text(LastSync("interrupted")) == "the last one was interrupted"


def test_the_runtime_script_tells_a_running_sync_from_an_interrupted_one_without_taking_its_lock(tmp_path):
    """The script as the runtime runs it (this machine's sh): a job without result.json is running while the lock's
    recorded holder lives, and interrupted once it is gone."""
    state, content = tmp_path / "state", tmp_path / "content"
    job = "2026-12-03T081509Z-1-000001"
    (state / "sync" / "jobs" / job).mkdir(parents=True)
    content.mkdir()
    (state / "sync" / "current").write_text(job + "\n")
    lock = state / "sync" / "lock"

    def last_sync(holder: int) -> LastSync | None:
        lock.write_text(json.dumps({"since": 1.0, "role": "worker", "pid": holder, "start": 1, "boot": "b"}))
        done = subprocess.run(["sh", "-c", script(str(content))], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "COLABSSH_STATE": str(state)})
        return parse_report(RuntimeStatus("colab", "here", True), done.stdout).last_sync

    assert last_sync(os.getpid()) == LastSync("running")
    gone = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    assert last_sync(int(gone)) == LastSync("interrupted")
    (state / "sync" / "jobs" / job / "result.json").write_text('{"exit": 0, "ended": 1, "cancelled": false}')
    assert last_sync(os.getpid()).state == "succeeded"


def test_a_failing_nvidia_smi_is_said_not_taken_for_a_board(tmp_path):
    from tests.fakes import path_with_standins

    done = subprocess.run(["sh", "-c", script(str(tmp_path))], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": path_with_standins(), "FAKE_NVIDIA_SMI_FAIL": "1",
                               "COLABSSH_STATE": str(tmp_path / "state")})
    report = parse_report(RuntimeStatus("colab", "here", True, content=str(tmp_path)), done.stdout)
    assert report.gpus == [] and report.gpu_error.startswith("NVIDIA-SMI has failed")
    assert report.served_seconds is None  # no cell has served from this state folder
    lines = report_lines(report)
    assert lines[0].startswith("  GPU      ? (nvidia-smi: NVIDIA-SMI has failed")
    assert lines[1].startswith("  served   ? (VM up ")


def test_a_hung_nvidia_smi_costs_the_report_a_few_seconds_not_the_whole_status(tmp_path, monkeypatch):
    """A wedged driver makes the real nvidia-smi hang: the report goes on without the GPU, and says why."""
    from colabssh_cli import runtime_status
    from tests.fakes import path_with_standins

    monkeypatch.setattr(runtime_status, "GPU_SECONDS", 1)
    done = subprocess.run(["sh", "-c", script(str(tmp_path))], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PATH": path_with_standins(), "FAKE_NVIDIA_SMI_HANG": "1",
                               "COLABSSH_STATE": str(tmp_path / "state")})
    report = parse_report(RuntimeStatus("colab", "here", True, content=str(tmp_path)), done.stdout)
    assert report.gpus == [] and report.gpu_error == "nvidia-smi did not answer within 1 s"
    assert report.disk_total_bytes and "status=done" in done.stdout


def test_a_flood_of_boards_from_nvidia_smi_is_cut_to_the_most_a_machine_has(tmp_path):
    from colabssh_cli.runtime_status import MAX_GPUS
    from tests.fakes import path_with_standins

    done = subprocess.run(["sh", "-c", script(str(tmp_path))], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PATH": path_with_standins(), "NVIDIA_STANDIN_GPUS": "40",
                               "COLABSSH_STATE": str(tmp_path / "state")})
    report = parse_report(RuntimeStatus("colab", "here", True, content=str(tmp_path)), done.stdout)
    assert len(report.gpus) == MAX_GPUS == 16


def test_nvidia_smi_that_ignores_sigterm_is_killed_and_one_that_leaves_a_child_does_not_hold_the_report(
        tmp_path, monkeypatch):
    import signal

    from colabssh_cli import runtime_status
    from tests.fakes import path_with_standins

    monkeypatch.setattr(runtime_status, "GPU_SECONDS", 1)
    base = {**os.environ, "PATH": path_with_standins(), "COLABSSH_STATE": str(tmp_path / "state")}
    done = subprocess.run(["sh", "-c", script(str(tmp_path))], capture_output=True, text=True, timeout=30,
                          env={**base, "FAKE_NVIDIA_SMI_HANG": "ignore-term"})
    report = parse_report(RuntimeStatus("colab", "here", True, content=str(tmp_path)), done.stdout)
    assert report.gpu_error == "nvidia-smi did not answer within 1 s"
    pid_file = tmp_path / "child.pid"
    try:
        done = subprocess.run(["sh", "-c", script(str(tmp_path))], capture_output=True, text=True, timeout=30,
                              env={**base, "FAKE_NVIDIA_SMI_LEAVES_CHILD": str(pid_file)})
        report = parse_report(RuntimeStatus("colab", "here", True, content=str(tmp_path)), done.stdout)
        assert [gpu.name for gpu in report.gpus] == ["Tesla T4"]
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_values_no_board_reports_are_unknown_not_shown_as_real():
    gpu = parse_gpu("T5, -50, 99999999999999999999999, -3, 1e308, -0.5")
    assert gpu == Gpu("T5", None, None, None, None, None)
    assert parse_gpu("T4, 100, 0, 15360, -5, 0") == Gpu("T4", 100, 0, 15360, -5, 0.0)
