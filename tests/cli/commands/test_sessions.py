"""`colabssh list`, `status`, `ssh` and `forget` against real runtimes."""

from __future__ import annotations

import json

import pytest

from colabssh_cli.app import main
from colabssh_cli.errors import BAD_INPUT, UNREACHABLE, ColabsshError
from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import close_shared_connection
from colabssh_cli.session import Session, save_sessions
from tests.cli.connection.test_flow_e2e import close_masters_after, stop_runtime  # noqa: F401  (a fixture)
from tests.fakes import path_with_standins


def test_list_without_sessions(capsys):
    assert main(["list"]) == 0
    assert "no sessions yet" in capsys.readouterr().err
    assert main(["list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_list_shows_each_session(connected, capsys):
    info = connected.runtime.info
    assert main(["connect", connected.runtime.code, "--no-open", "--name", "second"]) == 0
    capsys.readouterr()
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["alias"], r["host"], r["port"], r["tunnel"], r["pinned"]) for r in rows] == [
        ("colab", info.host, info.port, "local", True), ("second", info.host, info.port, "local", True)]
    assert main(["list"]) == 0
    table = capsys.readouterr().out
    assert f"root@{info.host}:{info.port}" in table and "second" in table
    close_shared_connection(connected.paths, "second")


@pytest.fixture
def gpu_runtime(start_runtime, client_key):
    """A runtime whose PATH has the nvidia-smi stand-in (a T4), connected as 'colab'."""
    running = start_runtime("local", extra_env={"PATH": path_with_standins()})
    assert main(["connect", running.code, "--no-open"]) == 0
    return running


def test_status_reads_the_runtime_over_ssh(gpu_runtime, capsys):
    content = gpu_runtime.content
    (content / "weights.bin").write_bytes(b"\0" * 300_000)
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reachable"] is True
    assert report["gpu"]["name"] == "Tesla T4" and report["gpu"]["memory_total_mib"] == 15360
    assert report["content_bytes"] >= 300_000
    assert 0 < report["disk_free_bytes"] <= report["disk_total_bytes"]
    assert report["uptime_seconds"] > 0
    assert main(["status", "colab"]) == 0
    text = capsys.readouterr().out
    assert "colab: reachable" in text and "Tesla T4" in text
    close_shared_connection(Paths.from_env(), "colab")


def test_status_of_a_dead_runtime_says_so_and_exits_3(connected, capsys):
    close_shared_connection(connected.paths, "colab")
    stop_runtime(connected.runtime)
    capsys.readouterr()
    assert main(["status"]) == UNREACHABLE
    captured = capsys.readouterr()
    assert "colab: unreachable" in captured.out
    assert "re-run the cell" in captured.err and "Traceback" not in captured.err
    assert main(["status", "--json"]) == UNREACHABLE
    assert json.loads(capsys.readouterr().out)["reachable"] is False


def test_status_of_an_unknown_alias(capsys):
    assert main(["status", "nope"]) == BAD_INPUT
    assert "no session named 'nope'" in capsys.readouterr().err


def test_ssh_runs_openssh_and_passes_the_exit_code_through(connected, capfd):
    assert main(["ssh", "--", "echo", "hello", "from", "$(hostname)"]) == 0
    assert capfd.readouterr().out.startswith("hello from ")
    assert main(["ssh", "colab", "--", "exit 42"]) == 42
    assert main(["ssh", "colab", "--", "ls", "/no/such/dir"]) == 2


def test_ssh_to_a_dead_runtime_is_255_with_advice(connected, capfd):
    close_shared_connection(connected.paths, "colab")
    stop_runtime(connected.runtime)
    assert main(["ssh", "--", "true"]) == 255
    assert "re-run the cell" in capfd.readouterr().err


def test_forget_an_unknown_alias_changes_nothing(connected, capsys):
    before = connected.paths.user_config.read_bytes()
    assert main(["forget", "other"]) == BAD_INPUT
    assert "no session named 'other'" in capsys.readouterr().err
    assert connected.paths.user_config.read_bytes() == before


def test_forget_drops_a_session_whose_block_was_removed_by_hand(connected, capsys):
    paths = connected.paths
    assert main(["connect", connected.runtime.code, "--no-open", "--name", "other"]) == 0
    close_shared_connection(paths, "other")
    own = paths.config.read_text()
    paths.config.write_text(own[:own.index("Host other")].rstrip("\n") + "\n")
    assert main(["forget", "other"]) == 0
    assert "other" not in json.loads(paths.sessions.read_text())["sessions"]


def test_a_session_list_that_cannot_be_written_is_one_error_and_no_temp_file(isolated_home):
    paths = Paths.from_env()
    paths.sessions.mkdir(parents=True)  # something that is not a file where the list goes
    (paths.sessions / "keep").write_text("x")
    session = Session(alias="colab", host="127.0.0.1", port=2222, user="root", tunnel="local")
    with pytest.raises(ColabsshError) as caught:
        save_sessions(paths, {"colab": session})
    assert caught.value.message.startswith(f"cannot write {paths.sessions}: ")
    assert sorted(p.name for p in paths.root.iterdir()) == ["sessions.json"]  # no temp file left behind
    assert (paths.sessions / "keep").read_text() == "x"
