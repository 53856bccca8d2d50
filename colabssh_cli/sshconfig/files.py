"""Careful file I/O for the ssh config files: reads that never mistake an error for an empty file,
atomic writes that keep symlinks and modes (the backups: backups.py; the lock: lock.py).

An atomic write: ``mkstemp`` in the target's own folder (mode 0600 from the start), write every byte,
``fsync``, ``fchmod`` to the kept mode, ``os.replace`` over the target, ``fsync`` the folder. Any
failure unlinks the temp file and leaves the target as it was. A temp file that survives a SIGKILL
(``.NAME.colabssh-tmp-*``) is removed by the next run, under the lock, where no other colabssh run
can be writing one.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from colab_bootstrap.files import file_kind

from ..errors import BAD_INPUT, FAILURE, ColabsshError

TEMP_MARK = ".colabssh-tmp-"
_MAX_LINKS = 40


class PlanOutdated(ColabsshError):
    """A file changed between planning and writing (another program wrote it): plan again."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} changed while colabssh was updating it",
                         "another program wrote it at the same time; run the command again", FAILURE)
        self.path = path


def io_error(action: str, path: Path, exc: OSError) -> ColabsshError:
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
            raise io_error("read", path, exc) from None
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
        raise io_error("read", path, exc) from None
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
        raise io_error("read", path, exc) from None
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
        raise io_error("read", path, exc) from None
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
            raise io_error("read", folder, exc) from None
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
        raise io_error("create", path, exc) from None
    os.chmod(path, 0o700)
    fsync_dir(path.parent)


def check_replaceable(path: Path) -> None:
    """Refuse to put a file in place of a device, a FIFO or a socket: renaming over /dev/null would replace it
    (as root, for every program on the machine). A folder there makes the rename itself fail, as it always has."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise io_error("read", path, exc) from None
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise ColabsshError(f"{path} is {file_kind(info.st_mode)}, not a file: colabssh does not replace it",
                            "give the path of a file, or move that one out of the way", BAD_INPUT)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write DATA to PATH whole or not at all: a temp file beside it (MODE from the start), fsync, rename,
    fsync the folder. A failure leaves PATH as it was and no temp file behind; an OSError becomes a
    ColabsshError. PATH itself is replaced (a symlink there is replaced by the file); a device, a FIFO or a
    socket there is refused (``check_replaceable``)."""
    check_replaceable(path)
    folder = path.parent
    try:
        tmp = write_temp(folder, path.name, data, mode, None)
    except OSError as exc:
        raise io_error("write", path, exc) from None
    try:
        os.replace(tmp, path)
    except OSError as exc:
        unlink_quietly(tmp)
        raise io_error("write", path, exc) from None
    except BaseException:
        unlink_quietly(tmp)
        raise
    fsync_dir(folder)


def remove_file(path: Path) -> bool:
    """Remove PATH if it is there (True when it was); any other failure is a ColabsshError."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise io_error("remove", path, exc) from None
    fsync_dir(path.parent)
    return True


def write_temp(folder: Path, name: str, data: bytes, mode: int, gid: int | None) -> str:
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
        unlink_quietly(tmp)
        raise
    os.close(fd)
    if not hasattr(os, "fchmod"):  # pragma: no cover - Windows
        os.chmod(tmp, mode)
    return tmp


def unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def group_to_keep(target: Path) -> int | None:
    try:
        gid = os.stat(target).st_gid
    except OSError:
        return None
    return None if hasattr(os, "getegid") and gid == os.getegid() else gid


def stale_temps(folder: Path, name: str) -> list[Path]:
    """Temp files next to NAME (outside the lock: ones a killed run left behind)."""
    try:
        return list(folder.glob(f".{name}{TEMP_MARK}*"))
    except OSError:
        return []


def clean_stale_temps(folder: Path, name: str) -> None:
    """Remove temp files a killed run left next to NAME. Call only while holding the lock."""
    for leftover in stale_temps(folder, name):
        unlink_quietly(str(leftover))
