"""What the relay said the last time it could not reach a session's runtime, and where it last found it, kept for
colabssh's own commands.

ssh sends a ProxyCommand's stderr to /dev/null when connection sharing persists (ControlPersist: the master may
outlive the terminal), so the relay's one-line reasons would be lost; the relay keeps them in
``~/.ssh/colabssh/relay/ALIAS.txt`` (removed again once it reaches a runtime), and `colabssh ssh/sync/status...`
show them when ssh fails. When it reaches a runtime at an address other than the Host block's (a recycled runtime),
it keeps that address in ``relay/ALIAS.found`` for `colabssh status`. Light: the relay imports it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..paths import Paths

FRESH = 120.0  # seconds: an older note is about an earlier attempt
_MAX = 16 << 10


def note_path(paths: Paths, alias: str) -> Path:
    return paths.root / "relay" / f"{alias}.txt"


def found_path(paths: Paths, alias: str) -> Path:
    return paths.root / "relay" / f"{alias}.found"


def keep(paths: Paths, alias: str, lines: list[str], path: Path | None = None) -> None:
    """Replace the alias's note (or PATH) with LINES (whole, through a temp file); nothing happens when that fails."""
    path = path or note_path(paths, alias)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))
        os.replace(temp, path)
    except OSError:
        pass


def clear(paths: Paths, alias: str, path: Path | None = None) -> None:
    try:
        os.unlink(path or note_path(paths, alias))
    except OSError:
        pass


def reached(paths: Paths, alias: str, address: str, moved: bool) -> None:
    """The relay reached the runtime: its reasons go; the address is kept when it is not the Host block's."""
    clear(paths, alias)
    if moved:
        keep(paths, alias, [address], found_path(paths, alias))
    else:
        clear(paths, alias, found_path(paths, alias))


def found(paths: Paths, alias: str) -> str:
    """Where the relay last reached the alias's runtime, when that was not the Host block's address ('' if not)."""
    lines = recent(paths, alias, found_path(paths, alias), fresh=None)
    return lines[0] if lines else ""


def recent(paths: Paths, alias: str, path: Path | None = None, fresh: float | None = FRESH) -> list[str]:
    """The lines of the alias's note (or PATH) when it is a regular file written in the last FRESH seconds."""
    try:
        fd = os.open(path or note_path(paths, alias), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return []
    try:
        info = os.fstat(fd)
        if not (info.st_mode & 0o170000 == 0o100000) or (fresh is not None and time.time() - info.st_mtime > fresh):
            return []
        text = os.read(fd, _MAX).decode("utf-8", "replace")
    except OSError:
        return []
    finally:
        os.close(fd)
    return [line for line in text.splitlines() if line.strip()]
