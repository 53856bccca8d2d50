"""Processes and ports through /proc: stop a child of ours (``stop_child``), or an sshd an earlier run of the
cell left behind with every connection it serves (``terminate_with_sessions``), and say who holds a port.

``stop_child`` is the one way to end a ``Popen`` child on both sides (colabssh_cli imports it too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

STOP_TIMEOUT = 5.0
TCP_LISTEN = "0A"  # the state column of /proc/net/tcp
# Local addresses in /proc/net/tcp{,6} (hex, as the kernel writes them) whose listener a bind to 127.0.0.1 meets.
_CLASHES_WITH_LOOPBACK = {"0100007F", "00000000", "00000000000000000000000000000000",
                          "0000000000000000FFFF00000100007F"}


def stop_child(process: subprocess.Popen[Any], grace: float = STOP_TIMEOUT) -> None:
    """SIGTERM a child process of ours, SIGKILL it after ``grace`` seconds; reaped either way."""
    if process.poll() is not None:
        return
    try:
        process.terminate()
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cmdline(pid: int) -> list[str]:
    """The process's argv ([] when it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def runs_with(pid: int, marker: str) -> bool:
    """True when the live process ``pid`` has ``marker`` in its command line.

    Substring, not argv word: sshd rewrites its argv into one title string
    ("sshd: /usr/sbin/sshd -D -f CONFIG [listener] 0 of 10-100 startups").
    """
    return bool(marker) and not is_gone(pid) and marker in " ".join(cmdline(pid))


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: [state, ppid, ...] ([] when gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat.rpartition(")")[2].split()


def live_pids() -> list[int]:
    """Every process id in /proc ([] where there is no /proc)."""
    try:
        return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return []


def parents() -> dict[int, int]:
    """pid -> parent pid of every live (not zombie) process."""
    found = {}
    for pid in live_pids():
        fields = _stat_fields(pid)
        if len(fields) > 1 and fields[0] != "Z":
            found[pid] = int(fields[1])
    return found


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc; [] where there is no /proc)."""
    return sorted(child for child, parent in parents().items() if parent == pid)


def start_time(pid: int) -> str:
    """When the process started (clock ticks since boot; '' when gone): with the pid, who it is."""
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else ""


def executable(pid: int) -> str:
    """The program the process runs ('' when gone or not ours to look at)."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def is_gone(pid: int) -> bool:
    """True when the process has exited (a zombie counts as gone; our own zombie child is reaped)."""
    try:
        reaped, _status = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return True
    except ChildProcessError:
        pass  # not our child: look at /proc
    fields = _stat_fields(pid)
    return not fields or fields[0] == "Z"


def terminate(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, wait until it is gone, SIGKILL after ``timeout`` seconds."""
    _signal_all({pid: start_time(pid)}, signal.SIGTERM)
    _wait_gone_or_kill({pid: start_time(pid)}, timeout)


def terminate_with_sessions(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """Stop an sshd listener and every sshd process below it (one per connection); return once all are gone.

    Each connection's sshd calls setsid() and holds its connection's socket on the listener's port, so it
    outlives its listener unless it is stopped too: a stopped runtime must not keep serving the
    connections it had. The listener is paused first, so it forks no new one while they are collected;
    only sshd processes are stopped (the programs of a session end with their connection, or live on,
    as after any sshd restart). Waiting until they are gone is what lets a re-run's sshd take the port.
    """
    program = executable(pid)
    listener = {pid: start_time(pid)}
    targets = dict(listener)
    _signal_all(listener, signal.SIGSTOP)
    try:
        targets.update(_sshd_below([pid], program))
        _signal_all(targets, signal.SIGTERM)
    finally:  # never left paused, even if interrupted here
        _signal_all(listener, signal.SIGCONT)  # it handles the pending SIGTERM before it accepts anything
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p, started in targets.items() if not _gone(p, started)]
        if not alive:
            return
        late = {p: t for p, t in _sshd_below(alive, program).items() if p not in targets}
        _signal_all(late, signal.SIGTERM)  # forked after the first look (e.g. a connection's post-auth child)
        targets.update(late)
        time.sleep(0.02)
    _wait_gone_or_kill(targets, timeout)


def _sshd_below(roots: list[int], program: str) -> dict[int, str]:
    """pid -> start time of the processes below ``roots`` reached through sshd processes only."""
    table = parents()
    found: dict[int, str] = {}
    frontier = list(roots)
    while frontier:
        parent = frontier.pop()
        for child, its_parent in table.items():
            if its_parent == parent and child not in found and _is_sshd(child, program) and _may_signal(child):
                found[child] = start_time(child)
                frontier.append(child)
    return found


def _may_signal(pid: int) -> bool:
    """True for a process this one may stop: its own user's, or any as root (a privsep child may be neither)."""
    try:
        return os.geteuid() == 0 or os.stat(f"/proc/{pid}").st_uid == os.geteuid()
    except OSError:
        return False


def _is_sshd(pid: int, program: str) -> bool:
    """True for the listener's own program or OpenSSH's per-connection programs (sshd-session, sshd-auth)."""
    exe = executable(pid)
    if exe:
        return exe == program or os.path.basename(exe).startswith("sshd")
    return " ".join(cmdline(pid)).startswith("sshd")


def _gone(pid: int, started: str) -> bool:
    """True when ``pid`` has exited, or its number now belongs to a process that started later."""
    return is_gone(pid) or start_time(pid) != started


def _signal_all(targets: dict[int, str], sig: int) -> None:
    """Send ``sig`` to each process that is still the one we found (its start time unchanged)."""
    for pid, started in targets.items():
        if _gone(pid, started):
            continue
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass  # gone, or not ours to stop (then the wait below says so by its end)


def _wait_gone_or_kill(targets: dict[int, str], timeout: float) -> None:
    """Wait for the processes to be gone; SIGKILL what is left after ``timeout`` and wait again."""
    for sig in (None, signal.SIGKILL):
        if sig is not None:
            _signal_all(targets, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(_gone(pid, started) for pid, started in targets.items()):
                return
            time.sleep(0.01)


def listening_sockets(port: int) -> list[str]:
    """The socket inodes listening on ``port`` where a bind to 127.0.0.1 would meet them (IPv4 and IPv6)."""
    inodes = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, _, port_hex = fields[1].rpartition(":")
            if int(port_hex, 16) == port and fields[3] == TCP_LISTEN and address in _CLASHES_WITH_LOOPBACK:
                inodes.append(fields[9])
    return inodes


def socket_holders(inodes: Iterable[str]) -> list[int]:
    """The processes that hold any of these sockets open (only those this user may look into)."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders = []
    for pid in live_pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    holders.append(pid)
                    break
            except OSError:
                continue
    return sorted(holders)


def port_holders(port: int) -> tuple[bool, list[int]]:
    """(something listens on ``port`` where 127.0.0.1 would clash, the processes that hold that listener)."""
    inodes = listening_sockets(port)
    return bool(inodes), socket_holders(inodes) if inodes else []
