"""`connect --via colab-cli` and the runtime that colab creates for it: a slow start behind colab's update notice,
and no runtime left behind that connect started, whether it fails, times out or is interrupted (Ctrl-C).

The stand-in `colab` (tests/standins/colab) follows the real CLI here: its update notice on stdout (the ssh stream)
before anything else, a session created on first contact in the real order (the assignment, which bills, then
colab's store, then "Session READY."), dying without a handler on SIGTERM or SIGINT, and `colab stop`/`sessions`.
FAKE_COLAB_CREATE_GATE (a FIFO) holds a creation until the test lets it go; Ctrl-C is a real SIGINT to the
main thread.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from colabssh_cli import console
from colabssh_cli.app import main
from colabssh_cli.connection import colab_bridge
from colabssh_cli.errors import INTERRUPTED, UNREACHABLE
from tests.cli.connection.test_colab_cli import ColabRoad, colab_road  # noqa: F401  (fixture)
from tests.cli.connection.test_flow_e2e import close_masters_after, user_ssh  # noqa: F401  (fixture)
from tests.cli.remote.test_advice import config_files, one_error

pytestmark = pytest.mark.slow  # starts a runtime behind the colab stand-in


@pytest.fixture
def road(colab_road: ColabRoad) -> ColabRoad:  # noqa: F811
    """The stand-in `colab` on PATH, bridging to a running local runtime (tests/test_colab_cli.py)."""
    return colab_road


def ctrl_c() -> None:
    """What Ctrl-C does to colabssh: SIGINT, handled in the main thread (colab runs in a session of its own)."""
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


def on_status(monkeypatch: pytest.MonkeyPatch, act: Callable[[str], None]) -> list[str]:
    """Pass each progress line connect shows to ACT (after showing it); returns the lines shown."""
    shown: list[str] = []
    real = console.status

    def status(message: str) -> None:
        real(message)
        shown.append(message)
        act(message)

    monkeypatch.setattr(console, "status", status)
    return shown


@pytest.fixture
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """FAKE_COLAB_CREATE_GATE: the stand-in's creation waits at this FIFO until `release`. Afterwards a stand-in
    still waiting there is let go (it then ends by itself), whatever the test did."""
    fifo = tmp_path / "create-gate"
    os.mkfifo(fifo)
    monkeypatch.setenv("FAKE_COLAB_CREATE_GATE", str(fifo))
    yield fifo
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # ENXIO: nobody waits there
        pass


def release(fifo: Path, timeout: float = 30.0) -> None:
    """Let the stand-in's creation finish (it reads the FIFO to its end). Opening a FIFO for writing waits for its
    reader: a stand-in that is gone fails the test here instead of hanging it."""
    opened = threading.Event()

    def open_and_close() -> None:
        with open(fifo, "wb"):
            opened.set()

    threading.Thread(target=open_and_close, daemon=True).start()
    assert opened.wait(timeout), "the stand-in never came to its creation gate"


# ---- the update notice and a slow start ---------------------------------------------------------------------


def test_connect_works_behind_the_update_notice_with_a_slow_start(road, isolated_home, monkeypatch, capsys):
    # colab writes its notice (5 lines) to the ssh stream at once, and the SSH banner only when the runtime is
    # made: paramiko alone gives each line after the first 2 s and failed with "Error reading SSH protocol banner"
    monkeypatch.setenv("FAKE_COLAB_CREATE_SECONDS", "3")
    assert main(road.connect_argv()) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert "colab: A new version of Colab CLI is available: 0.8.0 (current: 0.7.5)" in err  # passed on, once
    assert err.count("A new version of Colab CLI") == 1
    assert f"host key {road.runtime.info.fingerprint} (pinned at first contact" in out
    pins = (isolated_home / ".ssh" / "colabssh" / "known_hosts").read_text()
    assert pins == f"colabssh-colab {road.runtime.info.hostkey}\n"
    (listed,) = road.runtimes()  # connect finished: the runtime it made is the user's now, and runs
    assert listed.startswith(f"[{road.session}] ") and road.events("stopped") == []
    assert user_ssh(isolated_home, "colab", "echo ok").stdout == "ok\n"  # OpenSSH skips the notice too


@pytest.fixture
def silent_sshd() -> Iterator[int]:
    """A port that accepts connections and never says anything (no SSH banner)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    yield int(server.getsockname()[1])
    server.close()


def test_no_banner_within_the_first_contacts_time_is_one_error_and_the_runtime_is_stopped(
        road, silent_sshd, isolated_home, monkeypatch, capsys):
    monkeypatch.setattr(colab_bridge, "FIRST_CONTACT_TIMEOUT", 1.0)  # counted from the runtime being made
    monkeypatch.setenv("FAKE_COLAB_PORT", str(silent_sshd))
    assert main(road.connect_argv()) == UNREACHABLE
    err = capsys.readouterr().err
    line, _ = one_error(err)
    assert "gave no connection to the runtime (no SSH answer within 1 s)" in line
    assert f"stopped the runtime of colab session '{road.session}'" in err
    assert road.runtimes() == [] and config_files(isolated_home) == {}


# ---- failures after colab created the runtime ----------------------------------------------------------------


def test_openssh_failing_after_colab_created_the_runtime_stops_it(road, isolated_home, monkeypatch, capsys):
    def act(message: str) -> None:
        if message.startswith("logging in with OpenSSH"):
            os.environ["FAKE_COLAB_FAIL"] = "502"  # the runtime's sshd goes away between the two contacts

    monkeypatch.setenv("FAKE_COLAB_FAIL", "")
    on_status(monkeypatch, act)
    assert main(road.connect_argv()) == UNREACHABLE
    err = capsys.readouterr().err
    line, hint = one_error(err)
    assert "OpenSSH could not log in" in line and "colabssh put its files back as they were" in hint
    assert f"stopped the runtime of colab session '{road.session}'" in err
    assert road.runtimes() == [] and len(road.events("stopped")) == 1
    assert config_files(isolated_home) == {}


def test_a_session_that_existed_before_connect_is_never_stopped(road, isolated_home, monkeypatch, capsys):
    subprocess.run([str(road.exe), "new", "-s", road.session], check=True, capture_output=True)
    monkeypatch.setenv("FAKE_COLAB_FAIL", "502")
    assert main(road.connect_argv()) == UNREACHABLE
    err = capsys.readouterr().err
    assert "(HTTP 502)" in one_error(err)[0]
    assert "stopping the runtime" not in err and road.events("stopped") == []
    assert len(road.runtimes()) == 1  # the user's runtime: connect did not start it, so it does not stop it


@pytest.mark.parametrize("existing", [False, True], ids=["new-session", "existing-session"])
def test_a_needed_google_login_ends_colab_at_once_and_leaves_no_runtime(road, existing, isolated_home, monkeypatch,
                                                                         capsys):
    if existing:
        subprocess.run([str(road.exe), "new", "-s", road.session], check=True, capture_output=True)
    # colab asks before Colab assigns anything; for an existing session its prompt lands in the ssh stream
    monkeypatch.setenv("FAKE_COLAB_FAIL", "login")
    assert main(road.connect_argv()) == UNREACHABLE
    err = capsys.readouterr().err
    line, hint = one_error(err)
    assert "colab wants you to log in to Google first" in line and "colab sessions" in hint
    assert "waiting" not in err and "stopping the runtime" not in err
    assert len(road.runtimes()) == (1 if existing else 0) and config_files(isolated_home) == {}


# ---- Ctrl-C while colab creates the runtime -----------------------------------------------------------------


def test_ctrl_c_while_colab_creates_the_runtime_waits_for_it_then_stops_it(road, gate, isolated_home, tmp_path,
                                                                          monkeypatch, capsys):
    fifo = gate

    def act(message: str) -> None:
        if "colab: Creating session" in message:
            ctrl_c()  # the assignment is under way: the runtime exists, colab's store does not know its name yet
        elif "waiting for it to finish" in message:
            release(fifo)

    shown = on_status(monkeypatch, act)
    assert main(road.connect_argv()) == INTERRUPTED
    err = capsys.readouterr().err
    assert any("colab is still creating the runtime" in line for line in shown)
    assert f"stopped the runtime of colab session '{road.session}'" in err
    assert road.runtimes() == []  # nothing left that bills: no "[?]" runtime whose name colab never stored
    assert len(road.events("created")) == 1 and len(road.events("stopped")) == 1
    assert config_files(isolated_home) == {}


def test_a_second_ctrl_c_leaves_colab_to_finish_and_says_how_to_stop_the_runtime(road, gate, isolated_home,
                                                                                 monkeypatch, capsys):
    fifo = gate

    def act(message: str) -> None:
        if "colab: Creating session" in message or "waiting for it to finish" in message:
            ctrl_c()

    on_status(monkeypatch, act)
    assert main(road.connect_argv()) == INTERRUPTED
    err = capsys.readouterr().err
    s = road.session
    assert f"colab is left creating the runtime of colab session '{s}'" in err
    assert f"`colab stop -s {s}` ends it" in err
    # colab was not cut off mid-creation: let its creation finish, and it knows the runtime by name
    pid = int(re.search(rf"the runtime of colab session '{s}' \(pid (\d+)\)", err).group(1))  # type: ignore[union-attr]
    release(fifo)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # reaped already: it has ended
        pass
    (listed,) = road.runtimes()
    assert listed.startswith(f"[{s}] ")  # not "[?]": `colab stop -s NAME` stops it, as connect said
    assert road.events("stopped") == []


def test_colab_creating_for_too_long_is_left_to_finish_and_said_so(road, gate, isolated_home, monkeypatch,
                                                                     capsys):
    fifo = gate
    monkeypatch.setattr(colab_bridge, "CREATE_LIMIT", 1.0)
    assert main(road.connect_argv()) == UNREACHABLE
    err = capsys.readouterr().err
    s = road.session
    line, hint = one_error(err)
    assert f"colab was still creating the runtime of colab session '{s}' after" in line
    assert f"`colab stop -s {s}` ends it" in hint
    pid = int(re.search(rf"the runtime of colab session '{s}' \(pid (\d+)\)", err).group(1))  # type: ignore[union-attr]
    release(fifo)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # reaped already: it has ended
        pass
    (listed,) = road.runtimes()
    assert listed.startswith(f"[{s}] ") and config_files(isolated_home) == {}
