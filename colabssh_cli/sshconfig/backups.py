"""The backups of ``~/.ssh/config``: the user's original and the latest one, no more.

colabssh changes the user's config only to add or remove its Include block, and each change first keeps
the bytes it replaces, beside the file (0600):

* ``config.colabssh-original``: the config as it was before colabssh's first change to it. Written once
  and never overwritten (delete it yourself to let the next first change write it again). A user who had
  no config has no original: colabssh created the file, and `forget` removes it again.
* ``config.colabssh-bak-<UTC time>``: the config before colabssh's latest change. Each new one replaces
  the one before it (older ones are removed once the new one is safely on disk).

A config that holds nothing but colabssh's block (it created the file, the user added nothing) is not backed
up: there is nothing of the user's in it. Only files named exactly as colabssh names them, regular files in
the config's own folder, are ever renamed or removed. An install from before this rule may have many dated
backups: the oldest of them is the closest to the user's original, so when there is no original yet it
becomes the original (unless it is a file colabssh created), and the others but the newest go.

All of it runs under colabssh's lock, before the config is replaced: a run killed at any instant leaves
the config whole (the transaction's rule) and at least one backup that holds the bytes it had before.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from . import text
from .files import TEMP_MARK, fsync_dir, io_error, unlink_quietly, write_temp
from .render import BEGIN_MARKER, CREATED_NOTE, END_MARKER

BACKUP_MARK = ".colabssh-bak-"
ORIGINAL_MARK = ".colabssh-original"
_DATED = re.compile(r"\.colabssh-bak-(\d{8}T\d{12}Z)(?:-(\d+))?")


def original_of(path: Path) -> Path:
    return path.parent / f"{path.name}{ORIGINAL_MARK}"


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def backups_of(path: Path) -> list[Path]:
    """PATH's dated backups (exactly colabssh's names, regular files), oldest first."""
    found: list[tuple[str, int, Path]] = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    for name in names:
        if not name.startswith(path.name) or TEMP_MARK in name:
            continue
        match = _DATED.fullmatch(name[len(path.name):])
        if match and _is_regular(path.parent / name):
            found.append((match.group(1), int(match.group(2) or 1), path.parent / name))
    return [p for _, _, p in sorted(found)]


def kept_backups(path: Path) -> list[Path]:
    """Every backup of PATH colabssh keeps: the original (when there is one), then the dated ones."""
    original = original_of(path)
    return ([original] if _is_regular(original) else []) + backups_of(path)


def _block(data: bytes) -> Optional[text.Span]:
    try:
        return text.find_span(text.split_lines(data), BEGIN_MARKER.encode(), END_MARKER.encode())
    except text.MarkerError:
        return None


def _only_colabssh(data: bytes) -> bool:
    """Whether DATA is a config colabssh created that holds nothing but its block (nothing of the user's)."""
    lines = text.split_lines(data)
    span = _block(data)
    if span is None:
        return False
    note = CREATED_NOTE.encode()
    created = any(text.content(lines[i]).strip(b" \t") == note for i in range(span.begin + 1, span.end))
    rest = [line for i, line in enumerate(lines) if not span.begin <= i <= span.end and text.content(line)]
    return created and not rest


def _created_by_colabssh(data: bytes) -> bool:
    """Whether DATA carries the note of a config colabssh created (then there was no original)."""
    return CREATED_NOTE.encode() in data


def _put(folder: Path, name: str, source: str, final: Path) -> None:
    """Give the file SOURCE the name FINAL, never over an existing file (a hard link, then SOURCE goes)."""
    try:
        os.link(source, final)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        if os.path.lexists(final):  # no hard links on this file system: the lock keeps other colabssh runs out
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(final)) from None
        os.rename(source, final)
        fsync_dir(folder)
        return
    os.unlink(source)
    fsync_dir(folder)


def _write_new(path: Path, data: bytes, final: Path) -> None:
    folder, tmp = path.parent, ""
    try:
        tmp = write_temp(folder, path.name, data, 0o600, None)
        _put(folder, path.name, tmp, final)
        tmp = ""
    except FileExistsError:
        raise  # someone else's file took that name meanwhile: the caller picks another
    except OSError as exc:
        raise io_error("back up", path, exc) from None
    finally:
        if tmp:
            unlink_quietly(tmp)


def _adopt_oldest(path: Path) -> None:
    """An install from before the original existed: its oldest dated backup becomes the original."""
    original = original_of(path)
    if os.path.lexists(original):
        return
    dated = backups_of(path)
    if not dated:
        return
    try:
        oldest = dated[0].read_bytes()
    except OSError:
        return
    if _created_by_colabssh(oldest):
        return  # the user had no config: there is no original to keep
    try:
        _put(path.parent, path.name, str(dated[0]), original)
    except OSError:
        pass  # it stays a dated backup, pruned like the others


def _dated_name(path: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    base = path.parent / f"{path.name}{BACKUP_MARK}{stamp}"
    candidate, n = base, 1
    while os.path.lexists(candidate):
        n += 1
        candidate = Path(f"{base}-{n}")
    return candidate


def back_up(path: Path, data: bytes) -> Optional[Path]:
    """Keep DATA (PATH's bytes before the change about to be made) as the rules above say; return the backup
    written (None when DATA holds nothing of the user's). Call only while holding the lock."""
    if _only_colabssh(data):
        return None
    _adopt_oldest(path)
    original = original_of(path)
    if not os.path.lexists(original) and _block(data) is None and not backups_of(path):
        try:
            _write_new(path, data, original)
            return original
        except FileExistsError:
            pass
    for _ in range(5):
        backup = _dated_name(path)
        try:
            _write_new(path, data, backup)
            break
        except FileExistsError:
            continue  # another program made a file of that name meanwhile: the next name
    else:
        raise io_error("back up", path, OSError(errno.EEXIST, "every backup name was taken"))
    for older in backups_of(path):
        if older != backup:
            unlink_quietly(str(older))
    fsync_dir(path.parent)
    return backup
