"""The editor servers' folders of the runtime's home (``.vscode-server`` ...) kept on Drive, in ``colabssh/home``.

A full backup (``colabssh sync`` with no PATH, and the cell's periodic sync) keeps each editor folder that is in
the home as a few archives in ``<Drive>/colabssh/home/<folder>/`` (``editor_archives``), after the content root's
rsync, in the same job. Why archives and not a file-for-file copy: a server folder is ~7,900 small files, and
Google Drive's mount pays a network round trip for the first read of each; a handful of large files comes back
in the time of their bytes. What the server rebuilds or must not carry to another machine is left out
(``EXCLUDES``). The cell restores a folder that is missing from the home (``comeback``); an existing one is never
touched.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..drive_layout import EDITOR_FOLDERS, HOME_FOLDER

# What each editor folder leaves out (patterns relative to the editor folder, as rsync reads them: "/" anchors at
# the folder's top, a trailing "/" means folders only, no "/" matches a name at any depth). The layout, for the
# record: bin/<commit>/ (the server: node, out/, node_modules/) or cli/servers/Stable-<commit>/server/ (the same
# under the `code` CLI, with log.txt and pid.txt beside it); code-<commit> (the CLI); extensions/ (with
# extensions.json and .obsolete, the list of what is installed); data/Machine/ and data/User/ (settings, global
# and workspace storage); data/logs/ (a folder per start); data/CachedExtensionVSIXs/ (the downloaded .vsix files,
# kept only to install them again); .<commit>.log/.pid/.token and vscode-remote-lock.<user>.<commit> at the top.
# Symbolic links, sockets and FIFOs are never kept.
EXCLUDES = (
    "/data/logs/",  # a folder of logs per server start
    "/data/CachedExtensionVSIXs/",  # downloaded .vsix files: the extensions themselves are kept
    "/data/CachedProfilesData/",
    "/data/clp/",  # language packs' translation cache
    "/cli/servers/*/log.txt",
    "/cli/servers/*/pid.txt",
    "/vscode-remote-lock.*",  # held by the server that wrote it: a copy would block the next start
    "*.log",
    "*.pid",
    "*.lock",
    "*.token",  # the connection token of a server of this runtime: meaningless (and a secret) on another
    "*.sock",  # sockets and FIFOs are skipped anyway
    "core.[0-9]*",  # core dumps of a crashed language server (Pylance's dist/ has held gigabytes of them)
    "__pycache__/",
    ".cache/",
)
LABELS = {".vscode-server": "VS Code server", ".cursor-server": "Cursor server", ".vscodium-server": "VSCodium server"}
STAGING = ".colabssh-restoring"  # in the home: a folder is restored here whole, then renamed into place


@dataclass
class EditorStep:
    """A full backup's editor step: the home's editor folders NAMES, archived into STORE with ``argv[0]`` (tar)."""

    argv: list[str]
    names: list[str]  # the editor folders it carries
    home: str
    store: str  # <Drive>/colabssh/home
    tmp_dir: str  # archives and the index are written here first, then renamed into place

    def as_spec(self) -> dict:
        return {"argv": self.argv, "names": self.names, "home": self.home, "store": self.store,
                "tmp_dir": self.tmp_dir}


def store_of(drive: Path) -> Path:
    return drive / HOME_FOLDER


def tar_path() -> str:
    """GNU tar's path (every Linux runtime has it; the bare name lets a missing one fail with its own error)."""
    return shutil.which("tar") or "tar"


def present(root: Path) -> list[str]:
    """The editor folders that are real folders in ROOT (a link is not followed: its target is not the home's)."""
    names = []
    for name in EDITOR_FOLDERS:
        try:
            if stat.S_ISDIR(os.lstat(root / name).st_mode):
                names.append(name)
        except OSError:
            continue
    return names


def backup_step(home: Path, drive: Path) -> Optional[EditorStep]:
    """The step that archives the home's editor folders to Drive; None when the home holds none."""
    from .plan import TMP_FOLDER

    names = present(home)
    if not names:
        return None
    store = store_of(drive)
    return EditorStep([tar_path()], names, str(home), str(store), str(store / TMP_FOLDER))


def backed_up(drive: Path) -> list[str]:
    """The editor folders that have an index on Drive (a folder without one, such as an old file-for-file copy,
    is not a backup)."""
    from .editor_archives import INDEX

    names = []
    for name in EDITOR_FOLDERS:
        try:
            if stat.S_ISREG(os.lstat(store_of(drive) / name / INDEX).st_mode):
                names.append(name)
        except OSError:
            continue
    return names


def label(names: list[str]) -> str:
    """'VS Code server' for one kind, 'editor servers' for several."""
    kinds = {LABELS.get(name, name) for name in names}
    return kinds.pop() if len(kinds) == 1 else "editor servers"
