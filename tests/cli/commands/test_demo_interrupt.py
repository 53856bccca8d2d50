"""Ctrl-C during `colabssh demo`, end to end: the CLI as a process of its own against the printed cell's runtime
(real sshd, OpenSSH, torch on the CPU). It ends with exit 130 and one line saying the demo was stopped on the
runtime, and that is true when it says so: no process of the demo is left there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

STOPPED = "colabssh: error: interrupted: the demo was stopped; nothing of it is left running on the runtime"


def demo_processes(connected) -> list[int]:  # noqa: ANN001
    """This runtime's demo processes (not zombies): their command line runs colab_bootstrap.demo and their
    environment names this runtime's state folder (the cell's sshd gives it to every session)."""
    marker = f"COLABSSH_STATE={connected.runtime.state}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"colab_bootstrap.demo" in argv and marker in environ and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("whom", ["the terminal's process group", "colabssh alone"])
def test_ctrl_c_stops_the_demo_on_the_runtime_and_says_so(connected, whom) -> None:  # noqa: ANN001
    running = subprocess.Popen([sys.executable, "-m", "colabssh_cli", "demo"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True, env=dict(os.environ))
    assert running.stderr is not None
    said = []
    for line in running.stderr:  # wait for the demo's first progress line: it runs on the runtime now
        said.append(line)
        if line.startswith("demo: "):
            break
    assert said and said[-1].startswith("demo: torch"), said
    running_there = demo_processes(connected)
    assert len(running_there) == 1, running_there  # the one this command started
    if whom == "colabssh alone":
        running.send_signal(signal.SIGINT)
    else:  # what Ctrl-C on a terminal does: SIGINT to colabssh and to the ssh it started
        os.killpg(running.pid, signal.SIGINT)
    out, err = running.communicate(timeout=30)
    assert running.returncode == 130, err
    assert err.splitlines()[-1] == STOPPED, err
    assert "Traceback" not in err and out == ""
    assert not demo_processes(connected)  # at once: it was so when colabssh said it
