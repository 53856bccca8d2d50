"""What only Colab has: Drive mounting and Secrets. ``google.colab`` is imported lazily."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from .errors import BootstrapError

DRIVE_FOLDER_NAME = "drive"  # Drive is mounted at CONTENT/drive: /content/drive on Colab
COLAB_HOSTNAME_FILE = Path("/var/colab/hostname")  # on every Colab VM


def in_colab() -> bool:
    """True when this python can import google.colab (the notebook's kernel on Colab): Drive can be mounted."""
    try:
        importlib.import_module("google.colab")
    except ImportError:
        return False
    return True


def get_secret(name: str, say: Callable[[str], None] | None = None) -> str | None:
    """A Colab Secret's value, or None when there is no Colab, no such secret or no access."""
    try:
        userdata = importlib.import_module("google.colab.userdata")
    except ImportError:
        return None
    try:
        value = userdata.get(name)
    except Exception as exc:  # SecretNotFoundError, NotebookAccessError, TimeoutException
        if say is not None and type(exc).__name__ == "NotebookAccessError":
            say(f"note: the Colab Secret {name} exists but this notebook may not read it; "
                "turn on its 'Notebook access' switch (key icon, left bar)")
        return None
    return value if isinstance(value, str) and value else None


def resolve_drive(override: Path | None, content: Path, say: Callable[[str], None]) -> Path | None:
    """The Drive folder to back up into: COLABSSH_DRIVE, or Colab's Drive mounted at CONTENT/drive, or None."""
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
    mountpoint = content / DRIVE_FOLDER_NAME
    say(f"Drive: mounting Google Drive at {mountpoint} (allow access in the pop-up)...")
    try:
        drive.mount(str(mountpoint))
    except Exception as exc:  # ValueError, NotImplementedError, timeouts: all explained the same way
        raise BootstrapError(f"mounting Google Drive failed: {exc}",
                             "run the cell again and allow access, or set COLABSSH_DRIVE to a folder") from None
    folder = mountpoint / "MyDrive"
    if not folder.is_dir():
        raise BootstrapError(f"Google Drive was mounted but {folder} is missing",
                             "run the cell again, or set COLABSSH_DRIVE to a folder")
    say(f"Drive: mounted at {mountpoint}; backups go under {folder}")
    return folder


def on_colab(environ: Mapping[str, str] | None = None) -> bool:
    """True on a Colab VM, in the notebook's kernel or outside it (an SSH session, a sync): the runtime side's
    one answer to "are we on Colab". ``in_colab`` asks something else: can this python use google.colab."""
    env = os.environ if environ is None else environ
    return bool(env.get("COLAB_RELEASE_TAG")) or COLAB_HOSTNAME_FILE.exists()
