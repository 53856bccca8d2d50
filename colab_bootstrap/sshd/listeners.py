"""This machine's colabssh sshd listeners, found through /proc by the config they were started with."""

from __future__ import annotations

import re
from pathlib import Path

from .. import processes
from .config import CONFIG_NAME, HEADER, SNIPPET_COMMENT

_LISTENER_CONFIG = re.compile(r"(?:^|\s)-f\s?(/.*?/" + CONFIG_NAME + r")(?:\s|$)")
_PER_CONNECTION = re.compile(r"\s-R(?:\s|$)")  # a connection's sshd, re-executed, before it renames itself


def listener_config(pid: int) -> Path | None:
    """The config an sshd listener (not a connection's sshd) was started with; None for any other process."""
    line = " ".join(processes.cmdline(pid))
    if not line.startswith(("sshd", "/")) or _PER_CONNECTION.search(line):
        return None
    match = _LISTENER_CONFIG.search(line)
    return Path(match.group(1)) if match and "sshd" in line.split(" -f", 1)[0] else None


def listeners_of(config: Path) -> list[int]:
    """The live sshd listeners started with ``config``: this state folder's sshd, whatever its pid file says."""
    return [pid for pid in processes.live_pids() if listener_config(pid) == config and not processes.is_gone(pid)]


def is_colabssh_config(config: Path) -> bool:
    """True when ``config`` is an sshd_config colabssh wrote (its first line)."""
    try:
        with open(config, encoding="utf-8", errors="replace") as handle:
            return handle.readline().rstrip("\n") == HEADER
    except OSError:
        return False


def snippet_in_use(snippet: Path) -> bool:
    """True while a live colabssh sshd on this machine names ``snippet`` in its config: its login shells
    rely on it. An sshd config this user cannot read counts too (it may be another user's runtime); one that is
    gone does not (that sshd can start no session with it: it is a leftover, and must not keep the snippet)."""
    for pid in processes.live_pids():
        config = listener_config(pid)
        if config is None or processes.is_gone(pid):
            continue
        try:
            lines = config.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            continue
        except OSError:
            return True
        if lines[:1] == [HEADER] and SNIPPET_COMMENT + str(snippet) in lines:
            return True
    return False
