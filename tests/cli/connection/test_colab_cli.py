"""`colabssh connect --via colab-cli`: Google's `colab ssh --proxy-mode` as the road in, end to end.

Real here: the printed cell's sshd as the runtime's sshd, OpenSSH (its ControlMaster), paramiko, rsync and torch
(CPU). The stand-in is only Google's `colab` CLI (tests/standins/colab): it bridges stdin/stdout to that sshd, as
the real one bridges to Colab's WebSocket, and refuses a second connection to a runtime with the real 429 text.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from colab_bootstrap import conncode
from colabssh_cli.app import main
from colabssh_cli.errors import BAD_INPUT, UNREACHABLE
from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import close_shared_connection
from colabssh_cli.session import update_sessions
from tests.cellrunner import RunningCell
from tests.cli.connection.test_flow import tree
from tests.cli.connection.test_flow_e2e import close_masters_after, stats, user_ssh  # noqa: F401  (fixture)
from tests.fakes import STANDINS

STANDIN_COLAB = STANDINS / "colab"


@dataclass
class ColabRoad:
    """The stand-in `colab` on PATH, bridging to a running local runtime's sshd.

    Each test has its own colab session name: it is part of the block's HostName and so of OpenSSH's ControlPath
    (%C), and a long temp HOME puts that socket in one folder for the whole user (/tmp/colabssh-UID), where a
    shared name would let one test's ssh ride another test's (or another run's) connection.
    """

    state: Path  # FAKE_COLAB_DIR
    exe: Path  # the `colab` that PATH finds
    runtime: RunningCell
    session: str = "colab"

    def connect_argv(self, *extra: str) -> list[str]:
        return ["connect", "--via", "colab-cli", "--session", self.session, "--no-open", *extra]

    def calls(self) -> list[dict]:
        log = self.state / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def events(self, event: str) -> list[dict]:
        return [call for call in self.calls() if call.get("event") == event]

    def runtimes(self) -> list[str]:
        """What `colab sessions` lists: each runtime Colab has assigned (and bills), "[NAME] ..." or "[?] ..."."""
        return running_runtimes(self.exe)

    def wait_until_free(self, session: str = "", timeout: float = 15.0) -> None:
        """Block until no connection holds SESSION's runtime (the stand-in's lock), or fail."""
        session = session or self.session
        acquired = threading.Event()

        def take() -> None:
            with open(self.state / f"{session}.lock", "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                fcntl.flock(handle, fcntl.LOCK_UN)
            acquired.set()

        threading.Thread(target=take, daemon=True).start()
        assert acquired.wait(timeout), f"the runtime of '{session}' is still held after {timeout} s"


def running_runtimes(exe: Path) -> list[str]:
    done = subprocess.run([str(exe), "sessions"], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          check=True)
    return [line for line in done.stdout.splitlines() if line.startswith("[") and not line.startswith("[colab]")]


def colab_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The stand-in as `colab` first on PATH, its state folder in FAKE_COLAB_DIR; returns (exe, state)."""
    bin_dir = tmp_path / "colab-bin"
    bin_dir.mkdir()
    exe = bin_dir / "colab"
    exe.symlink_to(STANDIN_COLAB)
    state = tmp_path / "colab-state"
    state.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_COLAB_DIR", str(state))
    for name in ("FAKE_COLAB_FAIL", "FAKE_COLAB_VERSION", "FAKE_COLAB_PORT", "FAKE_COLAB_CREATE_SECONDS",
                 "FAKE_COLAB_CREATE_GATE"):
        monkeypatch.delenv(name, raising=False)
    # as for everyone once a newer google-colab-cli is out: its update notice, on stdout (the ssh stream), every time
    monkeypatch.setenv("FAKE_COLAB_LATEST", "0.8.0")
    return exe, state


@pytest.fixture
def colab_road(start_runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ColabRoad:
    exe, state = colab_on_path(tmp_path, monkeypatch)
    running = start_runtime("local")
    monkeypatch.setenv("FAKE_COLAB_PORT", str(running.info.port))
    return ColabRoad(state, exe, running, session=f"t{uuid.uuid4().hex[:12]}")


def use_python_with_torch(alias: str = "colab") -> None:
    """On Colab, `python3` in an SSH session is the kernel's python, with torch. Here that is this venv's python
    (the test machine's login files put another python3 first on PATH)."""

    def change(sessions: dict) -> None:
        sessions[alias] = dataclasses.replace(sessions[alias], python=sys.executable)

    update_sessions(Paths.from_env(), change)


@pytest.fixture
def via_colab(colab_road: ColabRoad, capsys: pytest.CaptureFixture[str]) -> Iterator[ColabRoad]:
    assert main(colab_road.connect_argv()) == 0, capsys.readouterr().err
    capsys.readouterr()
    yield colab_road
    close_shared_connection(Paths.from_env(), "colab")


def own_config(home: Path) -> str:
    return (home / ".ssh" / "colabssh" / "config").read_text()


# ---- connect ------------------------------------------------------------------------------------------------


def test_connect_writes_the_block_pins_the_key_and_openssh_logs_in(colab_road, isolated_home, capsys):
    train = colab_road.session
    assert main(colab_road.connect_argv("--gpu", "t4")) == 0
    out, err = capsys.readouterr()
    key = isolated_home / ".ssh" / "colabssh" / "id_ed25519"
    log = isolated_home / ".ssh" / "colabssh" / "colab-colab.log"
    block = own_config(isolated_home)
    assert f'  ProxyCommand "{colab_road.exe}" ssh --proxy-mode -s {train} -i "{key}" --gpu T4 2>"{log}"\n' in block
    for line in (f"  HostName {train}.colab-cli.invalid", "  User root", f"  IdentityFile {key}",
                 "  IdentitiesOnly yes", "  HostKeyAlias colabssh-colab", "  StrictHostKeyChecking accept-new",
                 "  ControlMaster auto", "  ControlPersist 10m"):
        assert line + "\n" in block
    assert "StrictHostKeyChecking no" not in block and "/dev/null" not in block
    # the runtime's own key, pinned in colabssh's known_hosts (never ~/.ssh/known_hosts)
    pins = (isolated_home / ".ssh" / "colabssh" / "known_hosts").read_text()
    assert pins == f"colabssh-colab {colab_road.runtime.info.hostkey}\n"
    assert not (isolated_home / ".ssh" / "known_hosts").exists()
    assert f"host key {colab_road.runtime.info.fingerprint} (pinned at first contact" in out
    assert f"colab: root@colab-cli:{train} (Google's `colab ssh --proxy-mode`; GPU T4" in out
    assert "ssh colab works (checked with OpenSSH)" in out
    assert f"colab: Creating runtime '{train}'..." in err  # colab's own progress, passed on
    # colab was given colabssh's key (-i): the runtime authorises the key colab sends
    sent = {call["pubkey"].split()[1] for call in colab_road.events("connected")}
    assert sent == {(isolated_home / ".ssh" / "colabssh" / "id_ed25519.pub").read_text().split()[1]}
    assert len(colab_road.events("connected")) == 2  # the pre-flight, then OpenSSH's master
    result = user_ssh(isolated_home, "colab", "echo through-colab")
    assert result.stdout == "through-colab\n", result.stderr
    assert len(colab_road.events("connected")) == 2  # through the master that connect left open
    session = json.loads((isolated_home / ".ssh" / "colabssh" / "sessions.json").read_text())["sessions"]["colab"]
    assert (session["tunnel"], session["extra"]["session"], session["gpu"]) == ("colab-cli", train, "T4")


def test_a_second_ssh_shares_the_first_ones_connection(via_colab, isolated_home):
    paths = Paths.from_env()
    assert close_shared_connection(paths, "colab")
    via_colab.wait_until_free()
    before = len(via_colab.events("connected"))
    first = subprocess.Popen(["ssh", "-F", str(paths.user_config), "-o", "BatchMode=yes", "colab", "echo ready; cat"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None and first.stdout.readline() == "ready\n"
        second = user_ssh(isolated_home, "colab", "echo second")
        assert second.stdout == "second\n", second.stderr
        assert len(via_colab.events("connected")) == before + 1  # colab was asked once, for the first ssh
        assert via_colab.events("refused-429") == []
        # without connection sharing the runtime refuses the second connection: what sharing avoids
        unshared = user_ssh(isolated_home, "-S", "none", "colab", "echo unshared")
        assert unshared.returncode == 255 and unshared.stdout == ""
        assert len(via_colab.events("refused-429")) == 1
        log = paths.root / "colab-colab.log"  # colab's stderr, which OpenSSH would discard under ControlPersist
        assert "[colab] Already-active SSH session (HTTP 429)" in log.read_text()
    finally:
        assert first.stdin is not None
        first.stdin.close()
        first.wait(timeout=30)
    assert first.returncode == 0


def test_running_connect_again_over_the_open_connection_changes_nothing(via_colab, isolated_home, capsys):
    before = stats(isolated_home)
    asked = len(via_colab.calls())
    assert main(via_colab.connect_argv()) == 0
    out, err = capsys.readouterr()
    assert stats(isolated_home) == before
    assert len(via_colab.calls()) == asked  # checked through the shared connection: colab was not asked again
    assert "through its open shared connection" in out and "no file changed" in err


def test_dry_run_shows_the_diff_and_neither_writes_nor_contacts(colab_road, isolated_home, capsys):
    before = tree(isolated_home)
    assert main(["connect", "--via", "colab-cli", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "+  ProxyCommand" in out and "ssh --proxy-mode -s colab -i" in out  # the session name: the alias
    assert "+Include " in out and "nothing was written" in err
    assert tree(isolated_home) == before and colab_road.calls() == []


def test_no_check_leaves_the_pin_to_the_first_ssh(colab_road, isolated_home, capsys):
    assert main(colab_road.connect_argv("--no-check")) == 0
    out, _ = capsys.readouterr()
    assert "the first `ssh colab` pins it (StrictHostKeyChecking accept-new)" in out
    known = isolated_home / ".ssh" / "colabssh" / "known_hosts"
    assert not known.exists() and colab_road.calls() == []
    assert user_ssh(isolated_home, "colab", "true").returncode == 0
    assert known.read_text() == f"colabssh-colab {colab_road.runtime.info.hostkey}\n"  # ssh pinned it, there


def test_a_new_runtime_behind_the_session_is_refused_until_connect_pins_it(via_colab, start_runtime, tmp_path,
                                                                            monkeypatch, isolated_home, capsys):
    paths = Paths.from_env()
    assert close_shared_connection(paths, "colab")
    via_colab.wait_until_free()
    renewed = start_runtime("local", where=tmp_path / "runtime-2")  # the session's runtime, made anew
    monkeypatch.setenv("FAKE_COLAB_PORT", str(renewed.info.port))
    assert renewed.info.hostkey != via_colab.runtime.info.hostkey
    assert main(["status"]) == UNREACHABLE
    err = capsys.readouterr().err
    assert "shows another host key than the one pinned (a new runtime?)" in err
    assert f"colabssh connect --via colab-cli --session {via_colab.session} --name colab" in err
    via_colab.wait_until_free()
    assert main(via_colab.connect_argv()) == 0
    out = capsys.readouterr().out
    new, old = conncode.fingerprint(renewed.info.hostkey), conncode.fingerprint(via_colab.runtime.info.hostkey)
    assert f"host key {new} (a new runtime behind '{via_colab.session}': it replaces the pin {old})" in out
    known = (isolated_home / ".ssh" / "colabssh" / "known_hosts").read_text()
    assert known == f"colabssh-colab {renewed.info.hostkey}\n"
    renewed_run = user_ssh(isolated_home, "colab", "echo renewed")
    assert renewed_run.stdout == "renewed\n", renewed_run


def test_forget_gives_back_the_users_config_and_frees_the_runtime(colab_road, isolated_home, capsys):
    ssh_dir = isolated_home / ".ssh"  # made (0700) by the runtime's key for the cell
    mine = b"Host github.com\r\n  User git\r\n# no final newline"
    (ssh_dir / "config").write_bytes(mine)
    assert main(colab_road.connect_argv()) == 0
    assert (ssh_dir / "config").read_bytes() != mine
    assert main(["forget", "colab"]) == 0
    out = capsys.readouterr().out
    assert (ssh_dir / "config").read_bytes() == mine
    for gone in ("config", "known_hosts", "sessions.json", "colab-colab.log"):
        assert not (ssh_dir / "colabssh" / gone).exists()
    assert f"`colab stop -s {colab_road.session}` ends it" in out
    colab_road.wait_until_free()  # forget closed the shared connection


# ---- the commands over this road ----------------------------------------------------------------------------


def test_status_goes_through_the_shared_connection(via_colab, capsys):
    asked = len(via_colab.calls())
    assert main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reachable"] is True and report["address"] == f"colab-cli:{via_colab.session}"
    assert report["uptime_seconds"] > 0
    assert len(via_colab.calls()) == asked


def test_status_starts_the_shared_connection_when_none_is_open(via_colab, capsys):
    assert close_shared_connection(Paths.from_env(), "colab")
    via_colab.wait_until_free()
    asked = len(via_colab.events("connected"))
    assert main(["status"]) == 0
    assert f"colab: reachable (colab-cli:{via_colab.session})" in capsys.readouterr().out
    assert len(via_colab.events("connected")) == asked + 1
    assert main(["status"]) == 0  # the first command's connection stays open for the next
    assert len(via_colab.events("connected")) == asked + 1


def test_demo_runs_on_the_runtime_through_colab(via_colab, capsys):
    use_python_with_torch()
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "7 passed, 0 failed" in out and "autograd" in out


def test_push_and_pull_go_through_the_shared_connection(via_colab, tmp_path, capsys):
    asked = len(via_colab.calls())
    local = tmp_path / "project"
    (local / "src").mkdir(parents=True)
    (local / "src" / "train.py").write_text("print('hello')\n")
    (local / "weights.bin").write_bytes(os.urandom(70_000))
    remote_dir = via_colab.runtime.content / "work"
    assert main(["push", str(local), str(remote_dir)]) == 0
    assert (remote_dir / "project" / "weights.bin").read_bytes() == (local / "weights.bin").read_bytes()
    back = tmp_path / "back"
    assert main(["pull", str(remote_dir / "project"), str(back)]) == 0
    assert (back / "project" / "src" / "train.py").read_text() == "print('hello')\n"
    assert "pushed" in capsys.readouterr().out
    assert len(via_colab.calls()) == asked  # rsync's ssh rode the open connection


@pytest.mark.parametrize("command", [["sync"], ["sync", "--dry-run"], ["restore"]])
def test_sync_and_restore_explain_that_there_is_no_drive(via_colab, command, capsys):
    asked = len(via_colab.calls())
    assert main(command) == BAD_INPUT
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"colabssh: error: `colabssh {command[0]}` needs Google Drive")
    assert "drive.mount asks for consent on the notebook page" in lines[0]
    assert "colabssh pull PATH" in lines[1] and "colabssh push PATH" in lines[1]
    assert len(via_colab.calls()) == asked  # refused before reaching the runtime
