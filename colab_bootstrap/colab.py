"""What only Colab has: Drive mounting and Secrets. ``google.colab`` is imported lazily."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Callable

from .errors import BootstrapError

DRIVE_MOUNTPOINT = Path("/content/drive")


def in_colab() -> bool:
    try:
        importlib.import_module("google.colab")
    except ImportError:
        return False
    return True


def get_secret(name: str) -> str | None:
    """A Colab Secret's value, or None when there is no Colab, no such secret or no access."""
    try:
        userdata = importlib.import_module("google.colab.userdata")
    except ImportError:
        return None
    try:
        value = userdata.get(name)
    except Exception:  # SecretNotFoundError, NotebookAccessError, TimeoutException
        return None
    return value or None


def resolve_drive(override: Path | None, say: Callable[[str], None]) -> Path | None:
    """The Drive folder to back up into: COLABSSH_DRIVE, or Colab's mounted Drive, or None."""
    if override is not None:
        if not override.is_dir():
            raise BootstrapError(f"COLABSSH_DRIVE={override} is not an existing folder",
                                 "create it, or unset COLABSSH_DRIVE to mount Google Drive")
        say(f"Drive: using {override} (COLABSSH_DRIVE)")
        return override
    if not in_colab():
        say("Drive: not on Colab and COLABSSH_DRIVE is not set; `colabssh sync` is off for this runtime")
        return None
    drive = importlib.import_module("google.colab.drive")
    try:
        drive.mount(str(DRIVE_MOUNTPOINT))
    except Exception as exc:  # ValueError, NotImplementedError, timeouts: all explained the same way
        raise BootstrapError(f"mounting Google Drive failed: {exc}",
                             "run the cell again and allow access, or set COLABSSH_DRIVE to a folder") from None
    folder = DRIVE_MOUNTPOINT / "MyDrive"
    say(f"Drive: mounted at {DRIVE_MOUNTPOINT}; backups go under {folder}")
    return folder


def on_colab_environment() -> bool:
    """True on a Colab VM even outside the kernel (used to word messages)."""
    return bool(os.environ.get("COLAB_RELEASE_TAG")) or Path("/var/colab/hostname").exists()
