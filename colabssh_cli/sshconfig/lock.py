"""The lock around every change to the ssh config files: one writer at a time, across processes.

``flock`` on POSIX, ``msvcrt.locking`` on Windows; a killed holder's lock is released by the kernel.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .files import io_error

_thread_lock = threading.RLock()
_depth: dict[str, int] = {}
_handles: dict[str, int] = {}


def _lock_fd(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined]
                return
            except OSError:
                continue
    fcntl.flock(fd, fcntl.LOCK_EX)


def _unlock_fd(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def lock_file(lock: Path) -> Iterator[None]:
    """An exclusive lock on LOCK (a sidecar file: the configs' inodes change on every replace).

    Re-entrant within a process (nested ``with`` blocks share one lock), so a caller may hold it
    around plan + apply while apply takes it again.
    """
    key = str(lock)
    with _thread_lock:
        if _depth.get(key, 0) == 0:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
            except OSError as exc:
                raise io_error("create the lock", lock, exc) from None
            try:
                _lock_fd(fd)
            except BaseException:
                os.close(fd)
                raise
            _handles[key] = fd
        _depth[key] = _depth.get(key, 0) + 1
        try:
            yield
        finally:
            _depth[key] -= 1
            if _depth[key] == 0:
                fd = _handles.pop(key)
                try:
                    _unlock_fd(fd)
                finally:
                    os.close(fd)
