"""google.colab.drive stand-in: Drive is FAKE_COLAB_ROOT/MyDrive, "mounted" as MOUNTPOINT/MyDrive (a symlink)."""

from __future__ import annotations

import os

from ._message import MessageError

__all__ = ["flush_and_unmount", "mount"]


def mount(mountpoint: str, force_remount: bool = False, timeout_ms: int = 120000, readonly: bool = False) -> None:
    root = os.environ.get("FAKE_COLAB_ROOT")
    if not root:
        raise NotImplementedError("Mounting drive is unsupported in this environment. Use PyDrive2 instead. See "
                                  "examples at https://colab.research.google.com/notebooks/io.ipynb#scrollTo=7taylj9wpsA2.")
    mountpoint = os.path.expanduser(mountpoint)
    if " " in mountpoint:
        raise ValueError("Mountpoint must not contain a space.")
    if os.path.islink(mountpoint):
        raise ValueError("Mountpoint must not be a symlink")
    link = os.path.join(mountpoint, "MyDrive")
    if os.path.islink(link):
        if not force_remount:
            print(f'Drive already mounted at {mountpoint}; to attempt to forcibly remount, call '
                  f'drive.mount("{mountpoint}", force_remount=True).')
            return
        os.unlink(link)
    if os.path.isdir(mountpoint) and os.listdir(mountpoint):
        raise ValueError("Mountpoint must not already contain files")
    failure = os.environ.get("FAKE_COLAB_DRIVE_FAIL", "")
    if failure == "timeout":
        raise ValueError("mount failed: timeout during initial read of root folder; for more info: "
                         "https://research.google.com/colaboratory/faq.html#drive-timeout")
    if failure == "denied":
        raise MessageError("Error: credential propagation was unsuccessful")
    target = os.path.join(root, "MyDrive")
    os.makedirs(target, exist_ok=True)
    os.makedirs(mountpoint, exist_ok=True)
    os.symlink(target, link)
    print(f"Mounted at {mountpoint}")


def flush_and_unmount(timeout_ms: int = 24 * 60 * 60 * 1000) -> None:
    root = os.environ.get("FAKE_COLAB_ROOT", "")
    mountpoint = os.environ.get("FAKE_COLAB_MOUNTPOINT", "/content/drive")
    link = os.path.join(mountpoint, "MyDrive")
    if not root or not os.path.islink(link):
        print("Drive not mounted, so nothing to flush and unmount.")
        return
    os.unlink(link)
    print("All changes made in this colab session should now be visible in Drive.")
