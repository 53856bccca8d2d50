"""Write a file whole or not at all, with the mode it should have (the runtime side's one way to do it).

A temp file of a fresh name (``mkstemp``) in the same folder, its mode set with ``fchmod`` whatever the
umask or a leftover temp of an earlier run says, flushed to disk, then renamed over the target. A fixed
temp name opened with ``O_CREAT`` would keep the mode of a leftover (0644, with a token in it).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

PRIVATE = 0o600


def write_atomically(path: Path, text: str, mode: int = PRIVATE) -> None:
    """Replace ``path`` with ``text`` (UTF-8) at ``mode``; on failure the old file stays and no temp is left."""
    fill_atomically(path, lambda handle: handle.write(text.encode("utf-8")), mode)


def copy_atomically(path: Path, source: BinaryIO, mode: int) -> None:
    """``write_atomically`` for what a stream gives (a download), read to its end."""
    fill_atomically(path, lambda handle: shutil.copyfileobj(source, handle), mode)


def fill_atomically(path: Path, fill: Callable[[BinaryIO], object], mode: int) -> None:
    """The one atomic write: FILL writes the bytes into a fresh temp file beside ``path``, which is then
    flushed, fsynced and renamed over it; on any failure the old file stays and no temp is left."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_private(path: Path, text: str) -> None:
    """``write_atomically`` at 0600: for the token, the authorised key, the session environment."""
    write_atomically(path, text, PRIVATE)


_KINDS = ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISLNK, "a symbolic link"))


def file_kind(mode: int) -> str:
    """What a file of MODE is, for a message: "a FIFO (named pipe)", "a character device", "a folder"..."""
    return next((name for test, name in _KINDS if test(mode)), "a special file")
