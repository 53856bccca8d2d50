"""Processes on the runtime, read from /proc: start times, boot id, names, who holds a file, signals."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional


def process_start(pid: int) -> Optional[int]:
    """When the process started (clock ticks after boot: /proc/PID/stat field 22); None when it is gone or a
    zombie. With its pid it names one process for good: a pid that is reused later has another start time."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_started_at(pid: int) -> Optional[float]:
    """The process's start as a wall-clock time (boot time plus its start ticks)."""
    ticks = process_start(pid)
    try:
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    return None if ticks is None else boot + ticks / os.sysconf("SC_CLK_TCK")


def command_name(pid: int) -> str:
    """The name the process runs under (its argv[0], without folders); '' when it is gone."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return ""
    return os.path.basename(argv0.decode(errors="replace"))


def holders_of(path: Path) -> list[int]:
    """The other processes that have PATH open (from /proc/*/fd; links are read, never followed, so a hung
    filesystem elsewhere cannot block the look)."""
    target = os.path.realpath(path)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") == target:
                    found.append(int(entry))
                    break
            except OSError:
                continue
    return sorted(found)


def signal_process(pid: int, sig: int) -> None:
    """SIG to PID, and to its whole group when it leads one (rsync and its helpers run in a group of their own)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def clock(when: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(when))


def ago(when: float) -> str:
    seconds = int(max(time.time() - when, 0))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"
