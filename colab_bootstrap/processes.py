"""Stopping processes: a child of ours (``stop_child``), or one an earlier run of the cell left behind, and only that.

``stop_child`` is the one way to end a ``Popen`` child on both sides (colabssh_cli imports it too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STOP_TIMEOUT = 5.0


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


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc; [] where there is no /proc)."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and fields[1] == str(pid) and fields[0] != "Z":
            found.append(int(entry))
    return found


def terminate_with_sessions(pid: int, stop: Callable[[], None] | None = None) -> None:
    """Stop an sshd listener and the per-connection sshd processes it forked.

    Each connection's sshd calls setsid(), so it outlives its listener unless it is
    stopped too: a stopped runtime must not keep serving the connections it had.
    """
    sessions = children(pid)
    if stop is not None:
        stop()
    else:
        terminate(pid)
    for child in sessions:
        try:
            os.kill(child, signal.SIGTERM)
        except ProcessLookupError:
            pass


def is_gone(pid: int) -> bool:
    """True when the process has exited (a zombie counts as gone; our own zombie child is reaped)."""
    try:
        reaped, _status = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return True
    except ChildProcessError:
        pass  # not our child: look at /proc
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def terminate(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, wait until it is gone, SIGKILL after ``timeout`` seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_gone(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not is_gone(pid):
        time.sleep(0.02)
