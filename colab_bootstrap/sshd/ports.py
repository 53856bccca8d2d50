"""The port this run's sshd listens on, claimed before anything is stopped.

A port held by this state folder's own earlier sshd counts as free (that sshd is stopped next); a port
another program holds is an error that names it, and the earlier run serves on.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from .. import processes
from ..errors import BootstrapError
from .config import CONFIG_NAME
from .listeners import is_colabssh_config, listener_config, listeners_of

PORT_TIMEOUT = 5.0  # for the port to be free once the earlier run's sshd and its connections are gone


def previous_port(state: Path) -> int:
    """The port the state folder's sshd was last configured with (0 when there is none)."""
    try:
        match = re.search(r"^Port (\d{1,5})$", (state / CONFIG_NAME).read_text(), re.MULTILINE)
    except OSError:
        return 0
    return int(match.group(1)) if match and 0 < int(match.group(1)) < 65536 else 0


def claim_port(state: Path, requested: int) -> int:
    """The port this run's sshd will listen on, decided before anything is stopped.

    A port held by this state folder's own earlier sshd counts as free: that sshd is stopped next. A port
    held by anything else is an error that names the holder. ``0`` (any port) prefers the earlier run's
    port, so the laptop's alias keeps working, and otherwise takes any free one.
    """
    if requested == 0:
        previous = previous_port(state)
        if previous and port_blocker(previous, state) is None:
            return previous
        return _any_free_port()
    blocker = port_blocker(requested, state)
    if blocker is not None:
        raise blocker
    return requested


def port_blocker(port: int, state: Path) -> BootstrapError | None:
    """None when nothing but this state folder's sshd (or a connection it is forking) listens on ``port``,
    else the error that says what holds it."""
    listening, holders = processes.port_holders(port)
    if not listening:
        return None
    ours = set(listeners_of(state / CONFIG_NAME))
    table = processes.parents()
    others = [pid for pid in holders if pid not in ours and table.get(pid) not in ours]
    if holders and not others:
        return None
    return _port_in_use(port, others)


def _port_in_use(port: int, holders: list[int]) -> BootstrapError:
    """The error for a port another program holds: who it is, and what to do."""
    where = f"port {port} on 127.0.0.1"
    if not holders:
        return BootstrapError(f"{where} is in use by a program this user cannot look into",
                              f"find it with `ss -ltnp 'sport = :{port}'` as root and stop it, or set "
                              "COLABSSH_PORT to a free port (0 picks one)")
    pid = holders[0]
    config = listener_config(pid)
    if config is not None and is_colabssh_config(config):
        return BootstrapError(f"{where} is in use by the sshd of another colabssh runtime "
                              f"(pid {pid}, state folder {config.parent})",
                              f"stop that runtime first: colabssh_stop() in its notebook, or `kill {pid}`")
    program = " ".join(processes.cmdline(pid)) or processes.executable(pid) or "unknown program"
    if len(program) > 80:
        program = program[:77] + "..."
    return BootstrapError(f"{where} is in use by pid {pid} ({program})",
                          "stop that program, or set COLABSSH_PORT to a free port (0 picks one)")


def _any_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bindable(port: int) -> bool:
    """True when sshd could bind 127.0.0.1:``port`` now. Probed as sshd binds (SO_REUSEADDR): connections
    of a stopped sshd in TIME_WAIT, or still closing, would fail a plain bind but never sshd's."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        except OSError:
            return False
        return True


def wait_until_bindable(port: int, state: Path, timeout: float = PORT_TIMEOUT) -> None:
    """Return once sshd can bind ``port``; else the error that says what holds it."""
    deadline = time.monotonic() + timeout
    while not bindable(port):
        if time.monotonic() > deadline:
            raise port_blocker(port, state) or BootstrapError(
                f"port {port} on 127.0.0.1 is still taken {timeout:.0f} s after the earlier run's sshd stopped",
                f"run the cell again; `ss -tanp 'sport = :{port}'` shows what holds it")
        time.sleep(0.02)
