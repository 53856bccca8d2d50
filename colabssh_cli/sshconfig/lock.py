"""The lock around every change to the ssh config files: one writer at a time, across processes.

``flock`` on POSIX, ``msvcrt.locking`` on Windows; a killed holder's lock is released by the kernel.

The lock file lives in ``~/.ssh/colabssh/`` and is there only while a run holds it: the holder removes
it before letting go, and a run that waited on a file removed meanwhile opens the new one and waits
again (it checks, once it holds the lock, that the file it holds is still the one at the path). The
folders the lock needed (``~/.ssh``, ``~/.ssh/colabssh``) go again at the end when this run made
them and nothing else was put in them: a command that changed nothing leaves nothing behind.

Upgrading from a colabssh that locked ``~/.ssh/.colabssh.lock``: while that file exists, it is held
too (after the new one, so the two versions never wait on each other in a circle); when nobody holds
it at that moment, it is removed (the new lock replaces it). An older colabssh that opened it in the
instant between is the one case the two versions might overlap.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from .files import io_error, make_private_dir

_thread_lock = threading.RLock()
_depth: dict[str, int] = {}
_held: dict[str, list[int]] = {}  # the lock's fds (the new one, then the legacy one when held)
_made: dict[str, list[Path]] = {}  # folders this hold created, to remove again when empty
_POSIX = os.name != "nt"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # a link planted at the lock's path is refused, never followed
_ATTEMPTS = 1000  # re-opens after a holder removed the file: each means another run got the lock first


def _say_waiting(why: str) -> None:
    """One line on stderr before a wait that may last: a command that seems to hang says what it waits for."""
    sys.stderr.write(f"colabssh: waiting: {why} (it goes on once that command ends)\n")
    sys.stderr.flush()


def _lock_fd(fd: int, wait: bool = True) -> bool:
    """Lock FD; without WAIT, False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined]
                return True
            except OSError:
                if not wait:
                    return False
                continue
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _unlock_fd(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


def _still_at(fd: int, lock: Path) -> bool:
    """Whether the file FD holds is still the one at LOCK (a holder removes it before letting go)."""
    if not _POSIX:
        return True
    try:
        there = os.stat(lock)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def _make_folders(folders: Sequence[Path]) -> list[Path]:
    """Create the missing FOLDERS (0700, in order); return those this call created."""
    made = []
    for folder in folders:
        if not os.path.isdir(folder):
            try:
                os.mkdir(folder, 0o700)
            except FileNotFoundError:
                raise  # another run removed the folder above, which it had made, right then: the caller goes again
            except OSError:
                make_private_dir(folder)  # another run made it meanwhile (fine), or the one clear error
                continue
            os.chmod(folder, 0o700)  # whatever the umask
            made.append(folder)
    return made


def _acquire(lock: Path, folders: Sequence[Path], made: list[Path]) -> int:
    for _ in range(_ATTEMPTS):
        try:
            made += _make_folders(folders)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | _NOFOLLOW | getattr(os, "O_BINARY", 0), 0o600)
        except FileNotFoundError:
            continue  # another run removed a folder it had made, right then: make it again
        except OSError as exc:
            raise io_error("create the lock", lock, exc) from None
        try:
            if not _lock_fd(fd, wait=False):
                _say_waiting(f"another colabssh command holds {lock}")
                _lock_fd(fd)
            if _still_at(fd, lock):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder removed it while we waited: wait on the new one
    raise io_error("create the lock", lock, OSError(0, "it kept being replaced"))


def _acquire_legacy(legacy: Path) -> Optional[int]:
    """Hold an older colabssh's lock file when it exists (never create it); remove it when nobody held it."""
    try:
        fd = os.open(legacy, os.O_RDWR | _NOFOLLOW | getattr(os, "O_BINARY", 0))
    except OSError:
        return None
    try:
        if _lock_fd(fd, wait=False):
            if _POSIX:
                try:
                    os.unlink(legacy)
                except OSError:
                    pass
        else:  # an older colabssh is writing: wait for it, and leave its file to it
            _say_waiting(f"an older colabssh holds {legacy}")
            _lock_fd(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _release(lock: Path, fds: list[int], made: list[Path]) -> None:
    if _POSIX:
        try:
            os.unlink(lock)  # still holding it: a waiter then sees it is gone and opens a new one
        except OSError:
            pass
    for fd in reversed(fds):
        try:
            _unlock_fd(fd)
        finally:
            os.close(fd)
    if _POSIX:
        for folder in reversed(made):
            try:
                os.rmdir(folder)  # only when empty: whatever the run (or another one) put there stays
            except OSError:
                pass


@contextmanager
def lock_file(lock: Path, *, folders: Sequence[Path] = (), legacy: Optional[Path] = None) -> Iterator[None]:
    """An exclusive lock on LOCK (a sidecar file: the configs' inodes change on every replace), made in
    FOLDERS (created as needed, 0700, and removed again when this hold made them and they stay empty).

    Re-entrant within a process (nested ``with`` blocks share one lock), so a caller may hold it
    around plan + apply while apply takes it again. LEGACY: an older colabssh's lock file, held too while
    it exists.
    """
    key = str(lock)
    with _thread_lock:
        if _depth.get(key, 0) == 0:
            made: list[Path] = []
            try:
                fds = [_acquire(lock, folders, made)]
                if legacy is not None:
                    try:
                        held = _acquire_legacy(legacy)
                    except BaseException:
                        _release(lock, fds, made)
                        raise
                    if held is not None:
                        fds.append(held)
            except BaseException:
                for folder in reversed(made):
                    try:
                        os.rmdir(folder)
                    except OSError:
                        pass
                raise
            _held[key], _made[key] = fds, made
        _depth[key] = _depth.get(key, 0) + 1
        try:
            yield
        finally:
            _depth[key] -= 1
            if _depth[key] == 0:
                _release(lock, _held.pop(key), _made.pop(key))
