"""`colabssh status` against real runtimes whose PATH has the nvidia-smi stand-in: the GPU at work, how long the
cell has served (not the VM's uptime), RAM, disk, the last sync; and `status --watch`, a live view over ONE ssh
process that Ctrl-C ends cleanly."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from colabssh_cli.app import main
from colabssh_cli.errors import BAD_INPUT, UNREACHABLE
from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import close_shared_connection
from tests.cli.connection.test_flow_e2e import stop_runtime
from tests.fakes import path_with_standins

COLABSSH = [sys.executable, "-m", "colabssh_cli"]


@pytest.fixture
def gpu_runtime(start_runtime, client_key, tmp_path):
    """Start a runtime with the nvidia-smi stand-in (its NVIDIA_STANDIN_* settings from ENV), connect it as 'colab',
    and wait until it serves; nvidia-smi's calls are counted in tmp_path/nvidia-smi.calls."""
    started = []

    def start(**env: str):
        running = start_runtime("local", extra_env={"PATH": path_with_standins(),
                                                    "NVIDIA_STANDIN_CALLS": str(tmp_path / "nvidia-smi.calls"),
                                                    **env})
        assert main(["connect", running.code, "--no-open"]) == 0
        assert running.wait_for(lambda line: "serving" in line) is not None
        started.append(running)
        return running

    yield start
    close_shared_connection(Paths.from_env(), "colab")


def nvidia_smi_calls(tmp_path: Path) -> int:
    log = tmp_path / "nvidia-smi.calls"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_status_shows_the_gpu_at_work_and_how_long_the_cell_has_served(gpu_runtime, capsys):
    running = gpu_runtime(NVIDIA_STANDIN_UTILIZATION="37")
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["gpu"] == {"name": "Tesla T4", "utilization_percent": 37, "memory_used_mib": 0,
                             "memory_total_mib": 15360, "temperature_c": 44, "power_w": 9.7}
    assert report["gpus"] == [report["gpu"]]
    assert 0 <= report["served_seconds"] < 60  # this run of the cell, just started
    assert report["uptime_seconds"] > 0  # the VM's, labelled as such below
    assert 0 < report["ram_used_bytes"] < report["ram_total_bytes"]
    assert report["last_sync"] is None
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "  GPU      Tesla T4  37 %  0 of 15360 MiB  44 °C  9.7 W\n" in text
    assert re.search(r"\n  served   \d+ s \(VM up [^)]+\)\n", text), text
    assert re.search(r"\n  RAM      \S+ \S+ of \S+ \S+ used\n", text), text
    assert "\n  sync     none yet\n" in text
    assert re.search(r"\n  content  \S+ \S+ in " + re.escape(str(running.content)) + "\n", text), text


def test_status_says_what_nvidia_smi_could_not_and_shows_every_board(gpu_runtime, capsys):
    gpu_runtime(NVIDIA_STANDIN_NA="power.draw,utilization.gpu", NVIDIA_STANDIN_GPUS="2")
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["gpus"]) == 2
    assert report["gpu"]["power_w"] is None and report["gpu"]["utilization_percent"] is None
    assert report["gpu"]["memory_total_mib"] == 15360
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "  GPU 0    Tesla T4  ?  0 of 15360 MiB  44 °C\n" in text  # no power at all, `?` for utilization
    assert "  GPU 1    Tesla T4  ?" in text and "N/A" not in text


def test_status_shows_the_last_sync(gpu_runtime, capsys):
    gpu_runtime()
    assert main(["sync"]) == 0
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    last = json.loads(capsys.readouterr().out)["last_sync"]
    assert last["state"] == "succeeded" and last["exit"] == 0 and 0 <= last["ago_seconds"] < 60
    assert main(["status"]) == 0
    assert re.search(r"\n  sync     \d+ s ago \(succeeded\)\n", capsys.readouterr().out)


@pytest.mark.parametrize("argv, said", [
    (["--watch", "--every", "0"], "--every 0: the watch refreshes every 0.5 to 3600 seconds"),
    (["--watch", "--every", "-3"], "--every -3: the watch refreshes every"),
    (["--watch", "--every", "nan"], "--every nan: the watch refreshes every"),
    (["--every", "5"], "--every goes with --watch"),
])
def test_watch_refuses_a_bad_pace_in_one_line(argv, said, capsys):
    assert main(["status", *argv]) == BAD_INPUT
    err = capsys.readouterr().err
    assert said in err and "colabssh status --watch --every 5" in err and "Traceback" not in err


class Watching:
    """`colabssh status --watch ...` in a session of its own (as a terminal's foreground job is), its stdout read
    line by line; ssh on its PATH is a shim that logs each start and its exit code, then runs the real one."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.log = tmp_path / "ssh.log"
        shim = tmp_path / "shim" / "ssh"
        shim.parent.mkdir(exist_ok=True)
        shim.write_text(f'#!/bin/sh\necho "start $*" >> {self.log}\n{shutil.which("ssh")} "$@"\nrc=$?\n'
                        f'echo "exit $rc" >> {self.log}\nexit $rc\n')
        shim.chmod(0o755)
        env = {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}
        self.process = subprocess.Popen([*COLABSSH, "status", "--watch", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
                                        start_new_session=True)

    def line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline()

    def ctrl_c(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)  # what the terminal does: the whole foreground group

    def finish(self) -> tuple[int, str, str]:
        out, err = self.process.communicate(timeout=60)
        return self.process.returncode, out, err

    def ssh_log(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def watching(tmp_path):
    started: list[Watching] = []

    def start(*args: str) -> Watching:
        started.append(Watching(tmp_path, *args))
        return started[-1]

    yield start
    for watch in started:
        watch.kill()


def remote_loops(content: Path) -> list[str]:
    """The runtime's status loops still running for this content root (the runtime is this machine)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "status=done" in cmdline and str(content) in cmdline:
            found.append(entry)
    return found


def test_watch_streams_reports_over_one_ssh_and_ctrl_c_ends_it_cleanly(gpu_runtime, watching, tmp_path):
    running = gpu_runtime(NVIDIA_STANDIN_UTILIZATION="0,50,100")
    before = nvidia_smi_calls(tmp_path)
    watch = watching("--json", "--every", "0.5")
    frames = [json.loads(watch.line()) for _ in range(4)]
    watch.ctrl_c()
    code, out, err = watch.finish()
    assert code == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert re.fullmatch(r"colab: stopped watching after \d+ reports\n", err), err
    seen = len(frames) + len(out.splitlines())
    assert f"after {seen} reports" in err
    assert {frame["gpu"]["utilization_percent"] for frame in frames} == {0, 50, 100}  # one nvidia-smi per report
    assert nvidia_smi_calls(tmp_path) - before == seen
    starts = [line for line in watch.ssh_log() if line.startswith("start ")]
    assert len(starts) == 1, watch.ssh_log()  # one ssh process for the whole watch
    assert watch.ssh_log()[-1] == "exit 0"  # the remote loop ended by itself when its stdin closed
    assert remote_loops(running.content) == []


def test_watch_ends_quietly_when_its_reader_goes(gpu_runtime, watching):
    gpu_runtime()
    watch = watching("--json", "--every", "0.5")
    assert json.loads(watch.line())["reachable"] is True
    watch.process.stdout.close()  # as `colabssh status --watch --json | head -1` does once it has its line
    assert watch.process.wait(timeout=60) == 0
    err = watch.process.stderr.read()
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert re.fullmatch(r"colab: stopped watching after \d+ reports?\n", err), err
    assert watch.ssh_log()[-1] == "exit 0"


def test_watch_prints_text_frames_when_not_on_a_terminal(gpu_runtime, watching):
    gpu_runtime(NVIDIA_STANDIN_UTILIZATION="0,100")
    watch = watching("--every", "0.5")
    blocks: list[list[str]] = [[]]
    while len(blocks) < 3:
        line = watch.line()
        assert line, "the watch ended early"
        if line == "\n":
            blocks.append([])
        else:
            blocks[-1].append(line.rstrip("\n"))
    watch.ctrl_c()
    code, _out, err = watch.finish()
    assert code == 0 and "Traceback" not in err
    first, second = blocks[0], blocks[1]
    assert re.fullmatch(r"colab: reachable \(.+\) at \d\d:\d\d:\d\d", first[0])
    assert any(line.startswith("  served   ") and "(VM up " in line for line in first)
    gpu = re.compile(r"  GPU      Tesla T4  (0|100) %  0 of 15360 MiB  44 °C  9\.7 W  ([▁█]+)")
    (one,), (two,) = ([gpu.fullmatch(line) for line in block if gpu.fullmatch(line)] for block in (first, second))
    assert one.group(2) == ("▁" if one.group(1) == "0" else "█")  # the sparkline starts with the first report
    assert two.group(1) != one.group(1)  # utilization moved (the stand-in alternates) ...
    assert two.group(2) == one.group(2) + ("▁" if two.group(1) == "0" else "█")  # ... and so did the sparkline


def test_watch_says_when_the_runtime_goes_away(gpu_runtime, watching):
    running = gpu_runtime()
    watch = watching("--json", "--every", "0.5")
    assert json.loads(watch.line())["reachable"] is True
    running.stop()  # it serves already (the fixture saw it say so): its sshd and each connection's go
    code, _out, err = watch.finish()
    assert code == UNREACHABLE, err
    assert "colab: the runtime went away during the watch" in err and "re-run the cell" in err
    assert "Traceback" not in err


def test_watch_of_a_dead_runtime_says_so_as_status_does(connected, watching):
    close_shared_connection(connected.paths, "colab")
    stop_runtime(connected.runtime)
    watch = watching("--json")
    code, out, err = watch.finish()
    assert code == UNREACHABLE and out == ""
    assert "re-run the cell" in err and "Traceback" not in err


def test_watch_on_a_terminal_is_a_live_view_that_ctrl_c_ends(gpu_runtime, tmp_path):
    gpu_runtime(NVIDIA_STANDIN_UTILIZATION="0,100")
    controller, terminal = os.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "40"}
    process = subprocess.Popen([*COLABSSH, "status", "--watch", "--every", "0.5"], stdin=terminal, stdout=terminal,
                               stderr=subprocess.PIPE, env=env, text=True, start_new_session=True)
    os.close(terminal)
    seen = b""
    try:
        while seen.count(b"Ctrl-C to stop") < 3:  # three refreshes of the one view
            chunk = os.read(controller, 65536)
            assert chunk, seen
            seen += chunk
        os.killpg(process.pid, signal.SIGINT)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        os.close(controller)
    text = seen.decode(errors="replace")
    assert process.returncode == 0 and "Traceback" not in err
    assert re.fullmatch(r"colab: stopped watching after \d+ reports\n", err), err
    assert "\x1b[" in text  # the view is redrawn in place (cursor movements), not printed again below
    assert "Tesla T4" in text and "served" in text and re.search("[▁█]{2,}", text)
