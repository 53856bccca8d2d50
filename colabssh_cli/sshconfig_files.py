"""Careful file I/O for the ssh config files: reads that never mistake an error for an empty file,
atomic writes that keep symlinks and modes, dated backups and the lock.

An atomic write: ``mkstemp`` in the target's own folder (mode 0600 from the start), write every byte,
``fsync``, ``fchmod`` to the kept mode, ``os.replace`` over the target, ``fsync`` the folder. Any
failure unlinks the temp file and leaves the target as it was. A temp file that survives a SIGKILL
(``.NAME.colabssh-tmp-*``) is removed by the next run, under the lock, where no other colabssh run
can be writing one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import BAD_INPUT, FAILURE, ColabsshError

TEMP_MARK = ".colabssh-tmp-"
BACKUP_MARK = ".colabssh-bak-"
BACKUPS_KEPT = 10
_MAX_LINKS = 40


class PlanOutdated(ColabsshError):
    """A file changed between planning and writing (another program wrote it): plan again."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} changed while colabssh was updating it",
                         "another program wrote it at the same time; run the command again", FAILURE)
        self.path = path


def _io_error(action: str, path: Path, exc: OSError) -> ColabsshError:
    reason = exc.strerror or str(exc)
    hints = {
        errno.ENOSPC: "free some disk space, then run the command again",
        errno.EDQUOT: "free some disk space, then run the command again",
        errno.EROFS: "the file system is read-only: add the Include line to your ssh config yourself "
                     "(see `colabssh connect --dry-run`)",
        errno.EACCES: "check the owner and permissions of the file and its folder",
        errno.EPERM: "check the owner and permissions of the file and its folder",
    }
    return ColabsshError(f"cannot {action} {path}: {reason}", hints.get(exc.errno or 0, "nothing was changed"),
                         FAILURE)


# ------------------------------------------------------------------------------------- reading


def resolve_target(path: Path) -> Path:
    """The file a path stands for, following a symlink chain; a dangling link or a loop is refused."""
    current = str(Path(os.path.abspath(path)))
    for _ in range(_MAX_LINKS):
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            if current == str(Path(os.path.abspath(path))):
                return Path(current)
            raise ColabsshError(f"{path} is a symlink to {current}, which does not exist",
                                "fix or remove the link (colabssh does not replace a link with a file)",
                                BAD_INPUT) from None
        except OSError as exc:
            raise _io_error("read", path, exc) from None
        if not stat.S_ISLNK(info.st_mode):
            return Path(os.path.realpath(os.path.dirname(current))) / os.path.basename(current)
        link = os.readlink(current)
        current = os.path.join(os.path.realpath(os.path.dirname(current)), link)
    raise ColabsshError(f"{path} is a symlink loop", "fix or remove the link", BAD_INPUT)


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None when it does not exist. Any other problem is an error, never 'empty'."""
    target = resolve_target(path)
    try:
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ColabsshError(f"{path} is a directory, not a file",
                            "move it out of the way; colabssh will not treat it as an empty config",
                            BAD_INPUT) from None
    except OSError as exc:
        raise _io_error("read", path, exc) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ColabsshError(f"{path} is a directory, not a file",
                                "move it out of the way; colabssh will not treat it as an empty config",
                                BAD_INPUT)
        if not stat.S_ISREG(info.st_mode):
            raise ColabsshError(f"{path} is not a regular file", "move it out of the way", BAD_INPUT)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise _io_error("read", path, exc) from None
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------ checking


def kept_mode(path: Path, target: Path, *, user_file: bool) -> int:
    """The mode to write TARGET with: 0600 when new, else its own mode (never widened).

    The user's config must not be writable by group or others (OpenSSH refuses to read it then):
    refuse with advice rather than fix it silently. colabssh's own files just lose those bits.
    """
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return 0o600
    except OSError as exc:
        raise _io_error("read", path, exc) from None
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022 and user_file:
        raise ColabsshError(f"{path} is writable by group or others (mode {mode:04o}); OpenSSH refuses such a config",
                            f"run `chmod go-w {target}`, then try again", BAD_INPUT)
    return mode & ~0o022


def check_owner(home: Path, ssh_dir: Path) -> None:
    """Refuse to run as root on another user's home (`sudo colabssh`): ssh would reject root's files."""
    if not hasattr(os, "geteuid"):
        return
    for folder in (ssh_dir, home):
        try:
            owner = os.stat(folder).st_uid
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _io_error("read", folder, exc) from None
        if owner != os.geteuid():
            raise ColabsshError(f"{folder} belongs to another user (uid {owner}), not to the one running colabssh",
                                "run colabssh as the user whose ssh config it is (not with sudo)", BAD_INPUT)
        return


# ------------------------------------------------------------------------------------- writing


def fsync_dir(folder: Path) -> None:
    """Make a rename in FOLDER durable (best effort: some file systems cannot fsync a folder)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_private_dir(path: Path, *, parents: bool = False) -> None:
    """Create PATH (0700, whatever the umask); an existing folder keeps its mode (the user's ~/.ssh is
    theirs to set). With PARENTS, missing folders above it are made the same way."""
    if parents and path.parent != path and not os.path.isdir(path.parent):
        make_private_dir(path.parent, parents=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not path.is_dir():
            raise ColabsshError(f"{path} exists but is not a folder", "move it out of the way", BAD_INPUT) from None
        return
    except OSError as exc:
        raise _io_error("create", path, exc) from None
    os.chmod(path, 0o700)
    fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write DATA to PATH whole or not at all: a temp file beside it (MODE from the start), fsync, rename,
    fsync the folder. A failure leaves PATH as it was and no temp file behind; an OSError becomes a
    ColabsshError. PATH itself is replaced (a symlink there is replaced by the file)."""
    folder = path.parent
    try:
        tmp = _write_temp(folder, path.name, data, mode, None)
    except OSError as exc:
        raise _io_error("write", path, exc) from None
    try:
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise _io_error("write", path, exc) from None
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(folder)


def remove_file(path: Path) -> bool:
    """Remove PATH if it is there (True when it was); any other failure is a ColabsshError."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _io_error("remove", path, exc) from None
    fsync_dir(path.parent)
    return True


def _write_temp(folder: Path, name: str, data: bytes, mode: int, gid: int | None) -> str:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}{TEMP_MARK}")  # 0600 from the start
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]
        os.fsync(fd)
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        if gid is not None and hasattr(os, "fchown"):
            try:
                os.fchown(fd, -1, gid)
            except OSError:
                pass
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    os.close(fd)
    if not hasattr(os, "fchmod"):  # pragma: no cover - Windows
        os.chmod(tmp, mode)
    return tmp


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _group_to_keep(target: Path) -> int | None:
    try:
        gid = os.stat(target).st_gid
    except OSError:
        return None
    return None if hasattr(os, "getegid") and gid == os.getegid() else gid


@dataclass
class _Staged:
    path: Path  # as the user knows it (for messages)
    target: Path  # the file behind it (symlinks resolved)
    old: bytes | None
    new: bytes | None
    new_tmp: str = ""  # the new bytes, ready to be renamed over the target
    old_tmp: str = ""  # a copy of the old bytes, to rename back if a later file fails
    committed: bool = False

    def as_record(self) -> dict[str, str | None]:
        return {"target": str(self.target), "new_tmp": self.new_tmp or None, "old_tmp": self.old_tmp or None,
                "old": _digest(self.old), "new": _digest(self.new)}


def _digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


class Transaction:
    """Write several files all or nothing, even across a SIGKILL.

    Stage: every new version and a copy of every old one go to temp files next to their targets;
    a failure here has changed nothing visible. Journal: the list of targets with their temp files
    and the digests of their old and new bytes goes to JOURNAL (atomically) before the first rename.
    Commit: renames and unlinks only, in order; a failure (or an interrupt) renames the old copies
    back. Then the journal and the leftover temp files go. A run killed between journal and the end
    is finished by the next one (``recover``): it completes the renames the journal lists (or undoes
    them, when the run died while rolling back), so the files never stay half changed.
    """

    def __init__(self, journal: Path | None = None, intent: str = "") -> None:
        self._staged: list[_Staged] = []
        self._journal = journal
        self._intent = intent

    def stage(self, path: Path, target: Path, old: bytes | None, new: bytes | None, mode: int) -> None:
        item = _Staged(path, target, old, new)
        self._staged.append(item)
        gid = _group_to_keep(target)
        try:
            if new is not None:
                item.new_tmp = _write_temp(target.parent, target.name, new, mode, gid)
            if old is not None:
                item.old_tmp = _write_temp(target.parent, target.name, old, mode, gid)
        except OSError as exc:
            raise _io_error("write", path, exc) from None

    def commit(self, check: Callable[[Path, bytes | None], None]) -> None:
        """Put every staged file in place; CHECK(path, old) runs just before each (compare-and-swap)."""
        try:
            for item in self._staged:
                check(item.path, item.old)
            self._write_journal(FORWARD)
            for item in self._staged:
                check(item.path, item.old)
                try:
                    if item.new is None:
                        os.unlink(item.target)
                    else:
                        os.replace(item.new_tmp, item.target)
                        item.new_tmp = ""
                except OSError as exc:
                    raise _io_error("remove" if item.new is None else "write", item.path, exc) from None
                item.committed = True
        except BaseException:
            self._roll_back()
            raise
        finally:
            self._discard()
        for folder in {item.target.parent for item in self._staged}:
            fsync_dir(folder)

    def abort(self) -> None:
        self._discard()

    def _write_journal(self, direction: str) -> None:
        if self._journal is None:
            return
        body = json.dumps({"version": 1, "direction": direction, "intent": self._intent,
                           "items": [item.as_record() for item in self._staged]}, indent=1)
        try:
            atomic_write(self._journal, body.encode("utf-8"), 0o600)
        except ColabsshError:
            if direction == FORWARD:
                raise  # nothing renamed yet: the caller's files are as they were
            # rolling back: go on without it (the next run then finds the forward journal)

    def _roll_back(self) -> None:
        if any(item.committed for item in self._staged):
            self._write_journal(BACKWARD)
        for item in reversed(self._staged):
            if not item.committed:
                continue
            try:
                if item.old is None:
                    os.unlink(item.target)
                else:
                    os.replace(item.old_tmp, item.target)
                    item.old_tmp = ""
            except OSError:
                pass  # best effort: that file then keeps its new (complete) version

    def _discard(self) -> None:
        for item in self._staged:
            for tmp in (item.new_tmp, item.old_tmp):
                if tmp:
                    _unlink_quietly(tmp)
            item.new_tmp = item.old_tmp = ""
        if self._journal is not None:
            _unlink_quietly(str(self._journal))
            fsync_dir(self._journal.parent)


FORWARD, BACKWARD = "forward", "backward"


@dataclass(frozen=True)
class Recovered:
    """What ``recover`` found: the killed run's intent ('' when unknown), its direction, and the files it changed."""

    intent: str = ""
    direction: str = ""
    changed: tuple[Path, ...] = ()
    found: bool = False


def recover(journal: Path) -> Recovered:
    """Finish the transaction a killed run left in JOURNAL; return the files it changed. Call under the lock.

    Forward: every target still holding its old bytes gets its new ones (the staged temp file renamed in,
    or the file removed); backward (the run died rolling back): every target holding its new bytes gets
    its old ones back. A target that holds neither (someone edited it since) is left alone. Then the
    journal and its temp files go.
    """
    try:
        record = json.loads(journal.read_bytes().decode("utf-8"))
        direction = record["direction"]
        intent = str(record.get("intent", ""))
        items = list(record["items"])
    except FileNotFoundError:
        return Recovered()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        _unlink_quietly(str(journal))  # a journal cut short was never acted on: nothing was renamed
        return Recovered(found=True)
    changed: list[Path] = []
    for item in items:
        try:
            target = Path(item["target"])
            want, have_tmp = (("new", item.get("new_tmp")) if direction == FORWARD else ("old", item.get("old_tmp")))
            unwanted = "old" if want == "new" else "new"
            if _current_digest(target) == item[unwanted] and item[unwanted] != item[want]:
                if item[want] is None:
                    os.unlink(target)
                    changed.append(target)
                elif have_tmp and _current_digest(Path(have_tmp)) == item[want]:
                    os.replace(have_tmp, target)
                    changed.append(target)
        except (OSError, KeyError, TypeError):
            continue
    for item in items:
        for tmp in (item.get("new_tmp"), item.get("old_tmp")) if isinstance(item, dict) else ():
            if isinstance(tmp, str) and TEMP_MARK in tmp:
                _unlink_quietly(tmp)
    _unlink_quietly(str(journal))
    for folder in {path.parent for path in changed} | {journal.parent}:
        fsync_dir(folder)
    return Recovered(intent, direction, tuple(changed), True)


def _current_digest(path: Path) -> str | None:
    """The SHA-256 of a regular file's bytes; None when missing; "" for anything that is not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        digest = hashlib.sha256()
        while chunk := os.read(fd, 1 << 16):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


def stale_temps(folder: Path, name: str) -> list[Path]:
    """Temp files next to NAME (outside the lock: ones a killed run left behind)."""
    try:
        return list(folder.glob(f".{name}{TEMP_MARK}*"))
    except OSError:
        return []


def clean_stale_temps(folder: Path, name: str) -> None:
    """Remove temp files a killed run left next to NAME. Call only while holding the lock."""
    for leftover in stale_temps(folder, name):
        _unlink_quietly(str(leftover))


def write_backup(path: Path, data: bytes) -> Path:
    """Save DATA as ``NAME.colabssh-bak-<UTC time>`` next to PATH (0600, never over an existing one).

    Call only while holding the lock (no other colabssh run makes backups then). Keeps the newest
    BACKUPS_KEPT backups.
    """
    folder, stamp = path.parent, datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    base = f"{path.name}{BACKUP_MARK}{stamp}"
    backup = folder / base
    n = 1
    while os.path.lexists(backup):
        n += 1
        backup = folder / f"{base}-{n}"
    tmp = ""
    try:
        tmp = _write_temp(folder, path.name, data, 0o600, None)
        os.replace(tmp, backup)
    except OSError as exc:
        if tmp:
            _unlink_quietly(tmp)
        raise _io_error("back up", path, exc) from None
    except BaseException:
        if tmp:
            _unlink_quietly(tmp)
        raise
    fsync_dir(folder)
    _prune_backups(folder, path.name)
    return backup


def backups_of(path: Path) -> list[Path]:
    """PATH's backups, oldest first."""
    found = [p for p in path.parent.glob(f"{path.name}{BACKUP_MARK}*") if TEMP_MARK not in p.name]
    return sorted(found, key=lambda p: (p.name.split(BACKUP_MARK)[1].split("-")[0], len(p.name), p.name))


def _prune_backups(folder: Path, name: str) -> None:
    for old in backups_of(folder / name)[:-BACKUPS_KEPT]:
        _unlink_quietly(str(old))


# ---------------------------------------------------------------------------------------- lock

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
                raise _io_error("create the lock", lock, exc) from None
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
