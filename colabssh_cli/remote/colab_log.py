"""What colabssh reads about Google's `colab` CLI: the log where each `--via colab-cli` session's ProxyCommand
keeps colab's stderr, the session record that says an alias goes through colab, and `colab version`.

advice.py explains what colab said; this module fetches it (files, a process), so advice stays pure.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

from ..errors import ColabsshError
from ..paths import Paths
from ..session import Session, load_sessions
from . import process

_VERSION_LINE = re.compile(r"^Version:\s*(\S+)\s*$", re.MULTILINE)


def log_path(paths: Paths, alias: str) -> Path:
    """Where the alias's ProxyCommand writes colab's stderr (each connection attempt starts it afresh).

    OpenSSH sends a ProxyCommand's stderr to /dev/null when ControlPersist is on, so without this file colab's
    own explanation of a failure (404, 429, ...) would be lost to colabssh and to the user alike.
    """
    return paths.root / f"colab-{alias}.log"


def last_colab_output(paths: Paths, alias: str, limit: int = 8192) -> str:
    """What colab wrote to stderr in the alias's latest connection attempt (its log's tail; '' if none)."""
    try:
        with open(log_path(paths, alias), "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(handle.tell() - limit, 0))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def drop_log(paths: Paths, alias: str) -> bool:
    """Remove the alias's colab log (forget); True when there was one."""
    from ..sshconfig.files import remove_file  # lazily: keeps `colabssh --help` light

    return remove_file(log_path(paths, alias))


def colab_context(paths: Paths, alias: str) -> tuple[Optional[Session], str]:
    """The alias's session record (None when unknown or unreadable) and colab's log tail: what
    ``advice.explain_ssh_stderr`` needs besides ssh's own stderr."""
    try:
        session = load_sessions(paths).get(alias)
    except ColabsshError:
        session = None
    return session, last_colab_output(paths, alias)


def colab_version(program: str, timeout: float = 15.0) -> Optional[str]:
    """What `PROGRAM version` says ("Version: 0.7.5"); None when it says no version.

    The real CLI has no --version: it answers that with a usage error, exit 2. `colab version` skips the update
    check, so it needs no network."""
    try:
        done = process.run([program, "version"], timeout=timeout)
    except (OSError, process.TimedOut):
        return None
    found = _VERSION_LINE.search(done.stdout) if done.returncode == 0 else None
    return found.group(1) if found else None
