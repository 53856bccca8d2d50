"""Is the Drive folder there? On Colab: a ``fuse.drive`` mount in ``/proc/self/mountinfo``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from .. import colab
from .config import MOUNTINFO
from .protocol import SyncRefused

DRIVE_FSTYPE = "fuse.drive"


def mount_fstype(path: Path, mountinfo: Path = MOUNTINFO) -> str:
    """The filesystem type of the mount that holds PATH ('' when mountinfo cannot be read)."""
    target = os.path.realpath(path)
    best, best_type = "", ""
    try:
        lines = mountinfo.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in lines:
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        fstype = line.split(" - ", 1)[1].split()[0]
        if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, best_type = point, fstype
    return best_type


def on_colab(environ: Mapping[str, str], mountinfo: Path = MOUNTINFO) -> bool:
    """Colab (``colab.on_colab``), or a machine with Google Drive's mount (Drive's rules apply there too)."""
    if colab.on_colab(environ):
        return True
    try:
        return f" - {DRIVE_FSTYPE} " in mountinfo.read_text(errors="replace")
    except OSError:
        return False


def check_drive(drive: Path, colab: bool, mountinfo: Path = MOUNTINFO) -> bool:
    """Refuse a Drive folder that is not there; True when it is Google Drive's mount (writes land in its cache).

    On Colab only a folder on the ``fuse.drive`` mount counts: an unmounted /content/drive is the VM's own disk,
    lost at recycle (and it would make the next drive.mount() fail). Off Colab an existing folder counts.
    """
    if colab:
        fstype = mount_fstype(drive, mountinfo)
        if fstype != DRIVE_FSTYPE or not drive.is_dir():
            raise SyncRefused(f"{drive} is not on Google Drive's mount ({fstype or 'no mount found'})",
                              "mount Drive in the notebook (re-run the colabssh cell, or "
                              "drive.mount('/content/drive')), then sync again", "no_drive")
        return True
    if not drive.is_dir():
        raise SyncRefused(f"the Drive folder {drive} does not exist",
                          "on Colab, re-run the colabssh cell so it mounts Drive; elsewhere set COLABSSH_DRIVE "
                          "to an existing folder before starting the cell", "no_drive")
    return False
