"""The runtime's identity kept on Drive: its host key and its current connection code.

A recycled runtime gets a new state folder; with the host key kept in ``<Drive>/colabssh/runtimes/KEYID/``
(``drive_layout.runtime_folder``) it presents the key of the notebook's earlier runtimes, so the laptop's pin,
alias and VS Code's known host stay valid. The first runtime of a key copies its own key there, once, without
overwriting one another runtime wrote meanwhile. What is on Drive is read as a regular file only (never
through a symlink, never blocking on a FIFO, never more than ``MAX_KEY_BYTES``) and checked with
``ssh-keygen -y`` against its ``.pub``; a damaged pair is named in one warning and left as it is, and the
runtime uses its own key. Drive is a FUSE mount on Colab where modes may not stick: the copy sshd reads is
always the state folder's (0600).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..drive_layout import CODE_NAME, HOST_KEY_NAME, runtime_folder
from ..files import PRIVATE, file_kind, write_atomically
from .access import ensure_host_key

MAX_KEY_BYTES = 16 * 1024  # an ed25519 key is ~400 bytes; anything this big is not one
PUBLIC = 0o644


class KeptKeyError(Exception):
    """The pair on Drive cannot be used; the message says why (for the one warning line)."""


def kept_folder(drive: Path | None, key_line: str) -> Path | None:
    """Where this key's runtimes keep their identity on Drive; None without a Drive folder."""
    return None if drive is None else runtime_folder(drive, key_line)


def host_key(state: Path, kept: Path | None, fresh: bool, say: Callable[[str], None]) -> str:
    """The host key sshd will present (the public line), installed in STATE: the one kept in KEPT when there
    is a good one, else the state folder's own (copied to KEPT when KEPT has none). FRESH: Drive is left alone."""
    if kept is None:
        return ensure_host_key(state)
    if fresh:
        say("host key: this runtime's own (fresh_host_key); the one kept on Drive is neither read nor written")
        return ensure_host_key(state)
    try:
        _sweep_temps(kept)
        line = _install_kept(state, kept)
        if line:
            say(f"host key: the one kept on Drive ({kept}): the same as this notebook's earlier runtimes")
            return line
        own = ensure_host_key(state)
        if _publish(state, kept):
            say(f"host key: new; kept on Drive for later runtimes ({kept})")
            return own
        line = _install_kept(state, kept)  # another runtime kept one first: that one is the notebook's
        if line:
            say(f"host key: the one another runtime just kept on Drive ({kept})")
            return line
        raise KeptKeyError("its pair is incomplete")
    except KeptKeyError as exc:
        say(f"colabssh: warning: the host key kept on Drive in {kept} cannot be used ({exc}); this runtime uses "
            f"its own. To keep a new one, remove {kept / HOST_KEY_NAME}*; or set COLABSSH_FRESH_HOST_KEY=1")
    except OSError as exc:
        if not str(exc.filename or "").startswith(str(kept)):
            raise  # the state folder's own trouble, explained as it is today
        say(f"colabssh: warning: cannot keep the host key on Drive in {kept} ({exc.strerror or exc}); this "
            "runtime uses its own (a recycled runtime will show a new one)")
    return ensure_host_key(state)


def _install_kept(state: Path, kept: Path) -> str:
    """Put the pair kept on Drive in STATE (0600, atomically) and return its public line; '' when KEPT has
    neither file. Raises KeptKeyError for a pair that is there but cannot be used."""
    private = _read_kept(kept / HOST_KEY_NAME)
    public = _read_kept(kept / (HOST_KEY_NAME + ".pub"))
    if private is None and public is None:
        return ""
    if private is None:
        raise KeptKeyError(f"{HOST_KEY_NAME} is missing")
    fd, tmp = tempfile.mkstemp(prefix=f".{HOST_KEY_NAME}.", suffix=".tmp", dir=state)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), PRIVATE)
            handle.write(private)
        derived = _derived_public(Path(tmp))
        if public is None:  # a runtime killed between the two files: the private half is the identity
            if not derived.startswith("ssh-ed25519 "):
                raise KeptKeyError(f"{HOST_KEY_NAME}.pub is missing and {HOST_KEY_NAME} is no usable ed25519 key")
            _create_whole(kept / (HOST_KEY_NAME + ".pub"), f"{derived} colabssh-runtime\n".encode(), PUBLIC)
            line = derived
        else:
            fields = public.decode("utf-8", errors="replace").split()
            if len(fields) < 2 or fields[0] != "ssh-ed25519":
                raise KeptKeyError(f"{HOST_KEY_NAME}.pub is not an ed25519 public key")
            line = f"{fields[0]} {fields[1]}"
            if derived != line:
                raise KeptKeyError(f"{HOST_KEY_NAME} is not a readable private key whose public half is the .pub")
        write_atomically(state / (HOST_KEY_NAME + ".pub"), line + " colabssh-runtime\n", PUBLIC)
        os.replace(tmp, state / HOST_KEY_NAME)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return line


STALE_TEMP = 600.0  # seconds: a temp file this old beside the kept pair was left by a killed runtime


def _sweep_temps(kept: Path) -> None:
    """Remove the temp files killed runtimes left in KEPT (a live runtime's temp lives for a moment only)."""
    try:
        entries = list(os.scandir(kept))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        if entry.name.startswith((f".{HOST_KEY_NAME}.", f".{CODE_NAME}.")) and entry.name.endswith(".tmp"):
            try:
                if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > \
                        STALE_TEMP:
                    os.unlink(entry.path)
            except OSError:
                pass


def _read_kept(path: Path) -> bytes | None:
    """A kept file's bytes; None when it is not there. Never follows a symlink nor waits on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KeptKeyError(f"{path.name} is a symbolic link") from None
        raise KeptKeyError(f"{path.name}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise KeptKeyError(f"{path.name} is {file_kind(mode)}")
        data = os.read(fd, MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise KeptKeyError(f"{path.name}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_BYTES:
        raise KeptKeyError(f"{path.name} is over {MAX_KEY_BYTES // 1024} KiB, too big for a host key")
    return data


def _derived_public(private: Path) -> str:
    """'type base64' of the private key at PRIVATE, from ssh-keygen -y; '' when it is no unencrypted key."""
    keygen = shutil.which("ssh-keygen")
    if not keygen:
        return ""
    try:
        derived = subprocess.run([keygen, "-y", "-P", "", "-f", str(private)], stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, errors="replace", timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    fields = derived.stdout.split()
    return f"{fields[0]} {fields[1]}" if derived.returncode == 0 and len(fields) >= 2 else ""


def _publish(state: Path, kept: Path) -> bool:
    """Copy STATE's pair to KEPT, each file written whole and never over an existing one (so two runtimes
    starting at once keep one pair). False when KEPT got a pair from another runtime first."""
    kept.mkdir(parents=True, exist_ok=True)
    private = (state / HOST_KEY_NAME).read_bytes()
    public = (state / (HOST_KEY_NAME + ".pub")).read_bytes()
    if not _create_whole(kept / HOST_KEY_NAME, private, PRIVATE):
        return False
    return _create_whole(kept / (HOST_KEY_NAME + ".pub"), public, PUBLIC)


def _create_whole(path: Path, data: bytes, mode: int) -> bool:
    """Write DATA to PATH unless PATH exists: a temp file beside it, then a hard link (atomic, never
    overwrites); where the filesystem has no hard links, a rename after a check. False when PATH existed."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            _chmod_if_allowed(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                raise
        if os.path.lexists(path):
            return False
        os.rename(tmp, path)
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def save_code(drive: Path | None, key_line: str, code: str, say: Callable[[str], None]) -> None:
    """Write the current connection code to ``runtimes/KEYID/connect.code`` on Drive (whole, 0600 where the
    filesystem allows), for a laptop that reads it through Drive for desktop; a failure is one warning."""
    folder = kept_folder(drive, key_line)
    if folder is None:
        return
    path = folder / CODE_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{CODE_NAME}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                _chmod_if_allowed(handle.fileno(), PRIVATE)
                handle.write((code + "\n").encode("ascii"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        say(f"colabssh: warning: could not save the connection code to Drive ({path}: {exc.strerror or exc}); "
            "copy the line below instead")
        return
    say(f"connection code saved to Drive: {path} (a laptop with `connect --drive-folder` finds it)")


def _chmod_if_allowed(fd: int, mode: int) -> None:
    """Drive's FUSE mount may refuse modes: what it refuses stays as the mount has it."""
    try:
        os.fchmod(fd, mode)
    except OSError:
        pass
