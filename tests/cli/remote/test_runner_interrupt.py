"""Ctrl-C during ``Remote.stream(..., stop_on_interrupt=True)`` against the printed cell's real sshd: the command on
the runtime is stopped too (its whole process group), and RemoteInterrupted says whether the runtime confirmed it."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from colabssh_cli.remote import runner
from colabssh_cli.remote.runner import PID_MARKER, STOPPED, UNCONFIRMED, Remote, RemoteInterrupted
from tests.cli.transfer.test_client_interrupt import runtime_sshd


def processes_naming(token: str, connected) -> list[int]:  # noqa: ANN001
    """The runtime's live processes (not zombies) whose command line holds TOKEN."""
    marker = f"COLABSSH_STATE={connected.runtime.state}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in argv and marker in environ and state != "Z":
            found.append(int(entry.name))
    return found


def ctrl_c_on(line: str) -> tuple[list[str], object]:
    """A stdout callback that sends this process SIGINT (what Ctrl-C does) when LINE arrives; and the lines seen."""
    seen: list[str] = []
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def sink(got: str) -> None:
        seen.append(got)
        if got == line:
            signal.pthread_kill(main_thread, signal.SIGINT)

    return seen, sink


def test_ctrl_c_stops_the_command_and_its_children_on_the_runtime(connected) -> None:  # noqa: ANN001
    token = "colabssh-test-4f1c"
    seen, sink = ctrl_c_on("begun")
    err: list[str] = []
    with pytest.raises(RemoteInterrupted) as caught:  # sh, and the sleep it starts: one process group
        Remote.for_alias("colab").stream(f"sh -c 'echo begun; sleep 61; : {token}' {token}", on_stdout=sink,
                                         on_stderr=err.append, stop_on_interrupt=True)
    assert caught.value.state == STOPPED
    assert isinstance(caught.value, KeyboardInterrupt)  # a caller that does not know it still ends as Ctrl-C
    assert seen == ["begun"] and not [line for line in err if line.startswith(PID_MARKER)]
    assert not processes_naming(token, connected) and not processes_naming("sleep 61", connected)


def test_a_stop_the_runtime_does_not_answer_is_unconfirmed(connected, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(runner, "STOP_TIMEOUT", 1.0)
    token = "colabssh-test-9e2a"
    frozen: list[int] = []

    def freeze_then_interrupt(line: str) -> None:
        frozen.extend(runtime_sshd(connected))
        for pid in frozen:  # the link goes silent: the stop is never answered
            os.kill(pid, signal.SIGSTOP)
        sink(line)

    seen, sink = ctrl_c_on("begun")
    try:
        with pytest.raises(RemoteInterrupted) as caught:
            Remote.for_alias("colab").stream(f"sh -c 'echo begun; exec sleep 62' {token}",
                                             on_stdout=freeze_then_interrupt, stop_on_interrupt=True)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    assert frozen and caught.value.state == UNCONFIRMED
    for pid in processes_naming("sleep 62", connected):  # what the test left behind on the runtime
        os.kill(pid, signal.SIGKILL)


def test_without_stop_on_interrupt_ctrl_c_is_a_plain_keyboard_interrupt(connected) -> None:  # noqa: ANN001
    seen, sink = ctrl_c_on("begun")
    with pytest.raises(KeyboardInterrupt) as caught:
        Remote.for_alias("colab").stream("echo begun; sleep 63", on_stdout=sink)
    assert not isinstance(caught.value, RemoteInterrupted)
    for pid in processes_naming("sleep 63", connected):  # it runs on until it next writes: not this test's case
        os.kill(pid, signal.SIGKILL)


def test_the_pid_line_is_caught_once_and_never_handed_on() -> None:
    pid: list[int] = []
    lines: list[str] = []
    catch = runner._catch_pid(pid, lines.append)
    for line in [f"{PID_MARKER}123", "progress", f"{PID_MARKER}456", f"{PID_MARKER}x"]:
        catch(line)
    assert pid == [123]
    assert lines == ["progress", f"{PID_MARKER}456", f"{PID_MARKER}x"]  # a later one is the command's own
