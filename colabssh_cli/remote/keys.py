"""colabssh's own client key: ed25519, made once, mode 0600, never printed.

Made under colabssh's lock, so a `colabssh bootstrap` and a `colabssh connect` started together agree on
one key (the cell one renders authorises the key the other logs in with). ssh-keygen writes into a fresh
private folder; the new key is then put in place with ``os.link``, which never replaces a key that
appeared meanwhile. The user's ~/.ssh keeps the mode it has.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..errors import FAILURE, ColabsshError
from ..paths import Paths
from ..sshconfig.files import atomic_write, make_private_dir
from . import process

KEYGEN_TIMEOUT = 60.0
SCRATCH_PREFIX = ".keygen-"  # ssh-keygen's private folder inside ~/.ssh/colabssh while a key is made


def _keygen() -> str:
    return process.require("ssh-keygen", "ssh-keygen is not installed", "install the OpenSSH client")


def _run_keygen(args: list[str], what: str) -> str:
    """ssh-keygen ARGS; its stdout. Any failure becomes one ColabsshError."""
    try:
        result = process.run([_keygen(), *args], timeout=KEYGEN_TIMEOUT)
    except (OSError, process.TimedOut) as exc:
        raise ColabsshError(f"cannot {what}: {getattr(exc, 'strerror', None) or exc}",
                            "check that ssh-keygen runs (`ssh-keygen -V`)", FAILURE) from None
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
        raise ColabsshError(f"cannot {what}: {detail}", "check that ssh-keygen runs (`ssh-keygen -V`)", FAILURE)
    return result.stdout


def _make_key(paths: Paths) -> None:
    """A new key pair in place of a missing one (an existing key is never replaced)."""
    for leftover in paths.root.glob(f"{SCRATCH_PREFIX}*"):  # a killed run's (no other run makes one: we hold the lock)
        shutil.rmtree(leftover, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(dir=paths.root, prefix=SCRATCH_PREFIX))
    try:
        made = scratch / "id_ed25519"
        _run_keygen(["-q", "-t", "ed25519", "-N", "", "-C", "colabssh", "-f", str(made)],
                    f"make colabssh's key {paths.key}")
        os.chmod(made, 0o600)
        try:
            os.link(made, paths.key)
        except FileExistsError:
            return  # another program made one meanwhile: that one stays, and its public key is read below
        except OSError as exc:
            raise ColabsshError(f"cannot write colabssh's key {paths.key}: {exc.strerror or exc}",
                                "check the owner and permissions of that folder", FAILURE) from None
        atomic_write(paths.public_key, made.with_name("id_ed25519.pub").read_bytes(), 0o644)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _public_key_line(paths: Paths) -> str:
    """The key's public line, from id_ed25519.pub, or derived from the key (and saved) when that is missing."""
    try:
        return paths.public_key.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        raise ColabsshError(f"cannot read {paths.public_key}: {getattr(exc, 'strerror', None) or exc}",
                            "delete it; colabssh derives it again from the key", FAILURE) from None
    derived = _run_keygen(["-y", "-f", str(paths.key)], f"read colabssh's key {paths.key}").strip()
    if not derived:
        raise ColabsshError(f"cannot read colabssh's key {paths.key}", "delete it to make a new one", FAILURE)
    line = f"{derived} colabssh"
    atomic_write(paths.public_key, (line + "\n").encode(), 0o644)
    return line


def made_key_note(paths: Paths) -> str:
    """What the command that had to make colabssh's own key says on stderr, once (`bootstrap`'s stdout stays the
    cell)."""
    key = paths.key
    shown = f"~/{key.relative_to(paths.home)}" if key.is_relative_to(paths.home) else str(key)
    return f"made colabssh's own key {shown} (its .pub goes into the cell)"


def ensure_client_key(paths: Paths) -> str:
    """Make the key if missing; return the public key line. Every failure is one ColabsshError."""
    from ..sshconfig.apply import locked  # lazily: keeps `colabssh --help` light

    try:  # the key is there and private: read it without the lock (a read-only ~/.ssh is fine then)
        if os.stat(paths.key).st_mode & 0o077 == 0 and os.path.isfile(paths.public_key):
            return _public_key_line(paths)  # reads only: the .pub is there
    except OSError:
        pass
    with locked(paths):  # creates ~/.ssh (0700) when missing; refuses one that is not a folder
        make_private_dir(paths.root)
        try:
            if os.stat(paths.key).st_mode & 0o077:  # colabssh's own key: ssh refuses one that others can read
                os.chmod(paths.key, 0o600)
        except FileNotFoundError:
            _make_key(paths)
            sys.stderr.write(made_key_note(paths) + "\n")  # said once: whichever command made it (stdout untouched)
        except OSError as exc:
            raise ColabsshError(f"cannot use colabssh's key {paths.key}: {exc.strerror or exc}",
                                "check the owner and permissions of that file and its folder", FAILURE) from None
        return _public_key_line(paths)
