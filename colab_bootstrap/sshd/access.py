"""Who may log in, and how the runtime proves who it is: the state folder (ours, 0700), the host key,
the one authorised key, and the login user.

``AllowUsers`` and the connection code name the user this process runs as, from the password database
(``pwd``), never from ``$USER``/``$LOGNAME``, which anyone can set.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from ..errors import BootstrapError
from ..files import write_private
from .config import AUTHORIZED_KEYS_NAME, HOST_KEY_NAME


def prepare_state(state: Path) -> None:
    """Make the state folder (0700) or take an existing one, only if it is a real folder of our own.

    Checked before its mode is touched, through one descriptor opened without following a symlink:
    as root, a chmod first would rewrite another user's folder (or a symlink's target) and only then refuse.
    """
    hint = "set COLABSSH_STATE to a folder of your own"
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BootstrapError(f"cannot make the state folder {state}: {exc.strerror or exc}", hint) from None
    try:
        fd = os.open(state, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        what = "a symlink" if os.path.islink(state) else (exc.strerror or str(exc)).lower()
        raise BootstrapError(f"the state folder {state} is not a folder colabssh can use ({what})", hint) from None
    try:
        if os.fstat(fd).st_uid != os.geteuid():
            raise BootstrapError(f"the state folder {state} belongs to another user", hint)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def login_name() -> str:
    """The user this process runs as, from the password database (not $USER, which the environment sets)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        raise BootstrapError(f"this process's user (uid {uid}) has no entry in the password database",
                             "sshd cannot log anyone in as a user it cannot look up; run the cell as a "
                             "user listed in /etc/passwd") from None


def ensure_host_key(state: Path) -> str:
    """The runtime's ed25519 host key (made once per state folder); returns the public line."""
    key = state / HOST_KEY_NAME
    if not key.exists() or not key.with_suffix(".pub").exists():
        key.unlink(missing_ok=True)
        key.with_suffix(".pub").unlink(missing_ok=True)
        keygen = shutil.which("ssh-keygen")
        if not keygen:
            raise BootstrapError("ssh-keygen is missing", "install it: apt-get install openssh-client")
        made = subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "colabssh-runtime", "-f", str(key)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
        if made.returncode != 0:
            detail = (made.stderr.strip().splitlines() or [f"exit status {made.returncode}"])[-1]
            raise BootstrapError(f"ssh-keygen could not make the runtime's host key: {detail}",
                                 f"check that {state} is writable and has room, then run the cell again")
    parts = key.with_suffix(".pub").read_text().split()
    return f"{parts[0]} {parts[1]}"


def write_authorized_key(state: Path, key_line: str) -> Path:
    path = state / AUTHORIZED_KEYS_NAME
    write_private(path, key_line + "\n")
    return path
