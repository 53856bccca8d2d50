"""Files that are files: every open of the runner refuses FIFOs, devices, sockets, folders and links in place
of a regular file, reads control files up to a cap, and writes its state whole or not at all."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Optional

from ..files import PRIVATE, file_kind, write_atomically
from ..units import human_size
from .config import STATE_FILE_MAX
from .protocol import SyncRefused


# Everything the runner opens could have been replaced by something else: a FIFO (opening it blocks until a writer
# comes: forever, with the lock held), a link to /dev/zero (reading it never ends), a socket, a folder, or a huge
# file. So every open goes through open_regular (O_NONBLOCK, O_NOFOLLOW unless a link is legitimate, then fstat:
# a regular file or nothing) and every read of a control file through read_small (a size cap).
class UnsafeFile(OSError):
    """A file the runner will not open or read: not a regular file, or larger than what it reads."""

    def __init__(self, path: Path | str, why: str) -> None:
        super().__init__(errno.EINVAL, why, str(path))
        self.path = str(path)
        self.why = why

    def __str__(self) -> str:
        return f"{self.path} is {self.why}"


def _not_regular(path: Path | str, mode: int) -> UnsafeFile:
    return UnsafeFile(path, f"{file_kind(mode)}, not a regular file")


def open_regular(path: Path | str, flags: int = os.O_RDONLY, follow: bool = False) -> int:
    """A descriptor of PATH, which must be a regular file (made, private, with O_CREAT in FLAGS). Never blocks:
    O_NONBLOCK, and what is not a regular file is refused before and after the open (the fstat settles it); a
    symbolic link is refused unless FOLLOW. Raises UnsafeFile, or the OSError of the open."""
    try:
        before = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        if not flags & os.O_CREAT:
            raise
    else:
        if not stat.S_ISREG(before.st_mode):
            raise _not_regular(path, before.st_mode)
    extra = os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags | extra, 0o600)
    except OSError as exc:  # replaced since the look: a link (ELOOP), a FIFO without reader or a socket (ENXIO)...
        if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EOPNOTSUPP):
            raise
        try:
            now = os.stat(path) if follow else os.lstat(path)
        except OSError:
            raise exc from None
        raise _not_regular(path, now.st_mode) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, mode)
    return fd


def read_small(path: Path | str, limit: int, follow: bool = False) -> bytes:
    """The bytes of PATH, a regular file of at most LIMIT bytes (at most LIMIT + 1 are ever read)."""
    fd = open_regular(path, os.O_RDONLY, follow)
    try:
        size = os.fstat(fd).st_size
        data = b""
        while size <= limit and len(data) <= limit:
            chunk = os.read(fd, limit + 1 - len(data))
            if not chunk:
                break
            data += chunk
        if size > limit or len(data) > limit:
            raise UnsafeFile(path, f"larger than {human_size(limit)} ({human_size(max(size, len(data)))})")
        return data
    finally:
        os.close(fd)


def append_bytes(path: Path | str, data: bytes) -> None:
    """Append to a regular file (made if missing); a FIFO or link there is refused, never written to."""
    fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    """Atomically, privately (0600): the runtime side's one writer (a temp file of a fresh name, fsync, rename)."""
    write_atomically(path, text, PRIVATE)


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data))


def read_json(path: Path, limit: int = STATE_FILE_MAX) -> Optional[dict]:
    """A JSON object from a small regular file; None when it is missing, not a regular file, too big or not JSON."""
    try:
        data = json.loads(read_small(path, limit))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def os_failure(exc: OSError, root: Path, what: str = "the sync could not start") -> SyncRefused:
    """An OSError as one line that names the path. On colabssh's own state (below ROOT, STATE/sync) it says what
    to do: remove it (the state is colabssh's, rebuilt as needed); elsewhere (Drive, the content root) it is a
    plain failure."""
    if isinstance(exc, UnsafeFile):
        path, detail = exc.path, str(exc)
    else:
        path = str(exc.filename2 or exc.filename or "")
        detail = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "") + \
            (f" -> {exc.filename2}" if exc.filename2 else "")
    if path and os.path.abspath(path).startswith(os.path.abspath(root) + os.sep):
        return SyncRefused(f"{what}: {detail}", f"it is colabssh's own state on the runtime: remove it (rm -r -- "
                           f"{path}), then run the sync again", "bad_state")
    return SyncRefused(f"{what}: {detail}", "", "failed")
