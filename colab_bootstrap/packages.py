"""Installing a missing Debian package on the runtime (sshd for the cell, rsync for sync): the one apt-get call."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable


def apt_install(package: str, program: str, say: Callable[[str], None], note: str = "",
                is_root: bool | None = None) -> str | None:
    """Install PACKAGE with apt-get (root only, quietly) and return PROGRAM's path afterwards; None when this is not
    root, there is no apt-get, or PROGRAM is still missing. NOTE is said first (what is missing, how long it takes)."""
    apt = shutil.which("apt-get")
    if not (os.geteuid() == 0 if is_root is None else is_root) or not apt:
        return None
    say(note or f"{program} is missing: installing {package} with apt-get...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", package]):
        subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    return shutil.which(program)
