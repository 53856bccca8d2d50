"""Which sshd program to run: COLABSSH_SSHD, else sshd on PATH or in the sbin folders; on a root runtime
without one, openssh-server installed with apt-get."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from ..errors import BootstrapError
from ..packages import apt_install

SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin")  # a plain user's PATH often lacks them


def find_sshd(say: Callable[[str], None], override: str = "", install: bool = True,
              is_root: bool | None = None) -> str:
    """sshd's absolute path; on a root runtime without it, install openssh-server with apt.

    ``override`` (``COLABSSH_SSHD``) names the sshd to use: a path, or a name looked up
    on PATH only. With it there is no fallback and never an apt install.
    """
    if override:
        found = shutil.which(override)
        if found:
            return os.path.abspath(found)
        raise BootstrapError(f"COLABSSH_SSHD={override} is not an sshd program this machine has",
                             "install openssh-server, or point COLABSSH_SSHD at sshd (e.g. /usr/sbin/sshd)")
    found = shutil.which("sshd") or next(
        (path for path in (os.path.join(d, "sshd") for d in SBIN_DIRS) if os.access(path, os.X_OK)), None)
    if found:
        return os.path.abspath(found)
    root = os.geteuid() == 0 if is_root is None else is_root
    apt = shutil.which("apt-get")
    if install and root and apt:
        apt_install("openssh-server", "sshd", say, "sshd is missing: installing openssh-server with apt-get (about a "
                    "minute)...", is_root=root)
        return find_sshd(say, install=False, is_root=root)  # sshd is in an sbin folder, maybe not on PATH
    if root and apt and install is False:
        raise BootstrapError("OpenSSH's sshd is not installed on this machine, and apt-get could not install it",
                             "check the network, run `apt-get install openssh-server`, then run the cell again")
    hint = ("install it: apt-get install openssh-server" if root
            else "install it: sudo apt-get install openssh-server (or run the cell as root)")
    raise BootstrapError("OpenSSH's sshd is not installed on this machine", hint)
