"""Where Google Drive for desktop (or a Linux mount of Drive) shows "My Drive" on this laptop.

`connect --drive-folder auto` takes the first folder found here; a plain `connect` only mentions it. Every place
is relative to a given home and platform (and, on Windows, given drive roots: G:\\ ...), so tests can build
each one in a temp folder.
"""

from __future__ import annotations

import os
import string
import sys
from collections.abc import Iterable
from pathlib import Path

from colab_bootstrap.drive_layout import CODE_NAME, ROOT, RUNTIMES_FOLDER

from ..errors import BAD_INPUT, ColabsshError

MY_DRIVE = "My Drive"
# Linux has no Drive client of Google's: these are the usual mount points of google-drive-ocamlfuse, rclone
# (`rclone mount gdrive: ~/gdrive`), Insync and GNOME Online Accounts' user-made links.
LINUX_PLACES = ("GoogleDrive", "google-drive", "gdrive", "Google Drive", "GDrive", "googledrive",
                "mnt/gdrive", "mnt/google-drive")


def _macos(home: Path) -> list[Path]:
    cloud = home / "Library" / "CloudStorage"
    accounts = sorted(cloud.glob("GoogleDrive-*")) if cloud.is_dir() else []
    return [account / MY_DRIVE for account in accounts] + [home / "Google Drive" / MY_DRIVE, home / "Google Drive",
                                                            Path("/Volumes/GoogleDrive") / MY_DRIVE]


def _windows(home: Path, drive_roots: Iterable[Path]) -> list[Path]:
    return [root / MY_DRIVE for root in drive_roots] + [home / "Google Drive" / MY_DRIVE, home / "Google Drive",
                                                        home / MY_DRIVE]


def _linux(home: Path) -> list[Path]:
    found: list[Path] = []
    for name in LINUX_PLACES:
        base = home / name
        found += [base / MY_DRIVE, base]
    insync = home / "Insync"
    if insync.is_dir():  # Insync: ~/Insync/ACCOUNT@gmail.com/Google Drive (or My Drive)
        for account in sorted(insync.iterdir()):
            found += [account / "Google Drive", account / MY_DRIVE]
    return found


def candidates(home: Path, platform: str = sys.platform, drive_roots: Iterable[Path] | None = None) -> list[Path]:
    """The usual "My Drive" places for PLATFORM ('darwin', 'win32', 'linux'), most likely first."""
    if platform == "darwin":
        return _macos(home)
    if platform == "win32":
        roots = drive_roots if drive_roots is not None else [Path(f"{letter}:\\") for letter in
                                                              string.ascii_uppercase[3:]]  # D: .. Z:
        return _windows(home, roots)
    return _linux(home)


def has_colabssh(folder: Path) -> bool:
    """Whether FOLDER holds colabssh's folder of runtimes (the cell ran once with Drive)."""
    return (folder / RUNTIMES_FOLDER).is_dir()


def detect(home: Path, platform: str = sys.platform, drive_roots: Iterable[Path] | None = None) -> Path | None:
    """The first existing place; one that already holds a colabssh folder wins."""
    found = [place for place in candidates(home, platform, drive_roots) if place.is_dir()]
    with_ours = [place for place in found if (place / ROOT).is_dir()]
    best = with_ours or found
    return best[0] if best else None


def home_dir() -> Path:
    """$HOME, or %USERPROFILE% on Windows."""
    return Path(os.environ.get("HOME") or os.environ.get("USERPROFILE") or Path.home())


def describe(folder: Path) -> str:
    """What connect says about a recorded folder."""
    if any((folder / RUNTIMES_FOLDER).glob(f"*/{CODE_NAME}")):
        return f"Drive folder: {folder}; a runtime's code is there"
    return (f"Drive folder: {folder}; no colabssh folder under it yet: the cell writes it when it runs with Drive "
            "mounted")


def for_connect(alias: str, code: str | None, option: str | None) -> tuple[str, list[str]]:
    """The Drive folder `connect` records for ALIAS ('' for none) and what to say about it: `--drive-folder`
    OPTION, else the alias's recorded folder; only for a connection code (its pin keeps a runtime found on Drive
    honest)."""
    from ..paths import Paths
    from ..session import load_sessions, validate_alias

    if code is None:
        if option is not None and option != "none":
            raise ColabsshError("--drive-folder needs a connection code (its pinned host key is what keeps a runtime "
                                "found on Drive honest)", "run the colabssh cell and connect its code", BAD_INPUT)
        return "", []
    validate_alias(alias)
    old = load_sessions(Paths.from_env()).get(alias)
    return chosen(option, old.drive_folder if old else "", home_dir())


def chosen(option: str | None, recorded: str, home: Path, platform: str = sys.platform,
           drive_roots: Iterable[Path] | None = None) -> tuple[str, list[str]]:
    """The folder a connect records ('' for none) and what to say about it, from `--drive-folder` (None when not
    given: the alias keeps its recorded folder), `auto` (the detected one) or `none` (dropped)."""
    if option is None:
        if recorded:
            if not Path(recorded).is_dir():
                return recorded, [f"Drive folder: {recorded} (kept from the earlier connect) is not there now; "
                                  "is Google Drive for desktop running? (--drive-folder none forgets it)"]
            return recorded, [describe(Path(recorded)) + " (kept from the earlier connect)"]
        found = detect(home, platform, drive_roots)
        if found is None:
            return "", []
        return "", [f"Google Drive for desktop found at {found}: add --drive-folder \"{found}\" (or auto) and a "
                    "recycled runtime is found again without a new code"]
    if option == "none":
        return "", []
    if option == "auto":
        found = detect(home, platform, drive_roots)
        if found is None:
            raise ColabsshError("--drive-folder auto: no Google Drive for desktop folder found on this machine",
                                "give its \"My Drive\" folder: --drive-folder PATH (docs/connect.md)", BAD_INPUT)
        folder = found
    else:
        hint = "give the \"My Drive\" folder Google Drive for desktop shows, or auto"
        if not option.strip():
            raise ColabsshError("--drive-folder is empty", hint + " (none forgets the recorded one)", BAD_INPUT)
        folder = Path(os.path.expanduser(option))
        if not folder.is_dir():
            what = "is not a folder" if os.path.lexists(folder) else "no such folder"
            raise ColabsshError(f"--drive-folder {option}: {what}", hint, BAD_INPUT)
    folder = folder.absolute()
    return str(folder), [describe(folder)]
