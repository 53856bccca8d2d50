"""colabssh's own client key: ed25519, made once, mode 0600, never printed."""

from __future__ import annotations

import os
import shutil
import subprocess

from .errors import MISSING_TOOL, ColabsshError
from .paths import Paths


def ensure_private_dir(path: os.PathLike[str]) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:
        os.chmod(path, mode & 0o700)


def ensure_client_key(paths: Paths) -> str:
    """Make the key if missing; return the public key line."""
    ensure_private_dir(paths.ssh_dir)
    ensure_private_dir(paths.root)
    if not paths.key.exists():
        keygen = shutil.which("ssh-keygen")
        if not keygen:
            raise ColabsshError("ssh-keygen is not installed", "install the OpenSSH client", MISSING_TOOL)
        paths.public_key.unlink(missing_ok=True)
        tmp = paths.root / ".id_ed25519.tmp"
        for stale in (tmp, tmp.with_name(tmp.name + ".pub")):
            stale.unlink(missing_ok=True)
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "colabssh", "-f", str(tmp)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(tmp, 0o600)
        os.replace(tmp.with_name(tmp.name + ".pub"), paths.public_key)
        os.replace(tmp, paths.key)
    elif os.stat(paths.key).st_mode & 0o077:
        os.chmod(paths.key, 0o600)
    if not paths.public_key.exists():
        keygen = shutil.which("ssh-keygen") or "ssh-keygen"
        result = subprocess.run([keygen, "-y", "-f", str(paths.key)], capture_output=True, text=True)
        if result.returncode != 0:
            raise ColabsshError(f"cannot read colabssh's key {paths.key}", "delete it to make a new one")
        paths.public_key.write_text(result.stdout.strip() + " colabssh\n")
    return paths.public_key.read_text().strip()
