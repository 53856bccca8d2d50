"""The editor servers' folders of the runtime's home (``.vscode-server`` ...) kept on Drive, in ``colabssh/home``.

A full backup (``colabssh sync`` with no PATH, and the cell's periodic sync) runs a second rsync in the same job
after the content root's: each editor folder that is in the home goes to ``<Drive>/colabssh/home/<folder>/``, a
mirror (``--delete``, no trash: the folder is the server's own install and cache, rebuilt by a download, never
the user's work; a removed extension or an old server build must not pile up on Drive). What the server rebuilds
or must not carry to another machine is left out (``EXCLUDES``). The cell restores a folder that is missing from
the home (``comeback``); an existing one is never touched.

Drive's mount keeps no execute bits (every file there reads 0600), and the server's ``node``, the ``code-<commit>``
CLI and ripgrep must stay executable: the backup writes the list of executable files beside each folder
(``<folder>.executables``, one path a line) and the restore sets those bits again.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..drive_layout import EDITOR_FOLDERS, HOME_FOLDER
from .files import read_small, write_text

# What each editor folder leaves out (rsync patterns; "/*/" is the editor folder itself). The layout, for the
# record: bin/<commit>/ (the server: node, out/, node_modules/) or cli/servers/Stable-<commit>/server/ (the same
# under the `code` CLI, with log.txt and pid.txt beside it); code-<commit> (the CLI); extensions/ (with
# extensions.json and .obsolete, the list of what is installed); data/Machine/ and data/User/ (settings, global
# and workspace storage); data/logs/ (a folder per start); data/CachedExtensionVSIXs/ (the downloaded .vsix files,
# kept only to install them again); .<commit>.log/.pid/.token and vscode-remote-lock.<user>.<commit> at the top.
EXCLUDES = (
    "/*/data/logs/",  # a folder of logs per server start
    "/*/data/CachedExtensionVSIXs/",  # downloaded .vsix files: the extensions themselves are kept
    "/*/data/CachedProfilesData/",
    "/*/data/clp/",  # language packs' translation cache
    "/*/cli/servers/*/log.txt",
    "/*/cli/servers/*/pid.txt",
    "/*/vscode-remote-lock.*",  # held by the server that wrote it: a copy would block the next start
    "*.log",
    "*.pid",
    "*.lock",
    "*.token",  # the connection token of a server of this runtime: meaningless (and a secret) on another
    "*.sock",  # sockets and FIFOs are skipped by rsync anyway (no -D)
    "core.[0-9]*",  # core dumps of a crashed language server (Pylance's dist/ has held gigabytes of them)
    "__pycache__/",
    ".cache/",
    "/.colabssh-tmp/",
)
MANIFEST_SUFFIX = ".executables"
MANIFEST_MAX = 8 << 20
LABELS = {".vscode-server": "VS Code server", ".cursor-server": "Cursor server", ".vscodium-server": "VSCodium server"}


@dataclass
class EditorStep:
    """The second rsync of a full backup, or one restore of an editor folder."""

    argv: list[str]
    names: list[str]  # the editor folders it carries
    home: str
    store: str  # <Drive>/colabssh/home
    tmp_dir: str

    def as_spec(self) -> dict:
        return {"argv": self.argv, "names": self.names, "home": self.home, "store": self.store,
                "tmp_dir": self.tmp_dir}


def store_of(drive: Path) -> Path:
    return drive / HOME_FOLDER


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


def backup_step(rsync: str, home: Path, drive: Path, dry_run: bool) -> Optional[EditorStep]:
    """The rsync that mirrors the home's editor folders to Drive; None when the home holds none."""
    from .plan import RSYNC_BASE, TMP_FOLDER

    names = present(home)
    if not names:
        return None
    store = store_of(drive)
    argv = [rsync, *RSYNC_BASE, "--delete", "--info=stats2"] + (["--dry-run"] if dry_run else
                                                                  [f"--temp-dir={TMP_FOLDER}"])
    argv += [f"--exclude={pattern}" for pattern in EXCLUDES]
    argv += ["--", *[f"{home}/./{name}" for name in names], f"{store}/"]
    return EditorStep(argv, names, str(home), str(store), str(store / TMP_FOLDER))


STAGING = ".colabssh-restoring"  # in the home: a folder is restored here whole, then renamed into place


def restore_step(rsync: str, home: Path, drive: Path, name: str) -> EditorStep:
    """The rsync that brings one editor folder back from Drive into the home's staging folder (``STAGING``; the
    caller renames it into place once it is complete: a cut-off restore never looks like a server folder)."""
    from .plan import RSYNC_BASE, TMP_FOLDER

    store, staging = store_of(drive), home / STAGING
    argv = [rsync, *RSYNC_BASE, "--info=stats2", f"--temp-dir={TMP_FOLDER}",
            *[f"--exclude={pattern}" for pattern in EXCLUDES], "--", f"{store}/./{name}", f"{staging}/"]
    return EditorStep(argv, [name], str(home), str(store), str(staging / TMP_FOLDER))


def backed_up(drive: Path) -> list[str]:
    """The editor folders that have a non-empty backup on Drive."""
    names = []
    for name in present(store_of(drive)):
        try:
            if any(os.scandir(store_of(drive) / name)):
                names.append(name)
        except OSError:
            continue
    return names


def write_manifests(home: Path, store: Path, names: list[str]) -> None:
    """Beside each folder on Drive, the list of its executable files (Drive's mount keeps no execute bits)."""
    for name in names:
        found = []
        for folder, dirs, files in os.walk(home / name):
            rel_folder = os.path.relpath(folder, home)
            dirs[:] = [d for d in dirs if d not in ("__pycache__", ".cache", "logs", "CachedExtensionVSIXs")]
            for file in files:
                try:
                    mode = os.lstat(os.path.join(folder, file)).st_mode
                except OSError:
                    continue
                if stat.S_ISREG(mode) and mode & stat.S_IXUSR and "\n" not in file:
                    found.append(f"{rel_folder}/{file}")
        write_text(store / (name + MANIFEST_SUFFIX), "".join(line + "\n" for line in sorted(found)))


def mark_executables(home: Path, store: Path, name: str) -> int:
    """Set the execute bits the backup recorded for NAME (paths that would leave the home are ignored)."""
    try:
        lines = read_small(store / (name + MANIFEST_SUFFIX), MANIFEST_MAX).decode(errors="replace").splitlines()
    except OSError:
        return 0
    marked = 0
    for rel in lines:
        parts = rel.split("/")
        if not rel or parts[0] != name or ".." in parts or rel.startswith("/"):
            continue
        path = home / rel
        try:
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, stat.S_IMODE(mode) | ((stat.S_IMODE(mode) & 0o444) >> 2) | stat.S_IXUSR)
                marked += 1
        except OSError:
            continue
    return marked


def label(names: list[str]) -> str:
    """'VS Code server' for one kind, 'editor servers' for several."""
    kinds = {LABELS.get(name, name) for name in names}
    return kinds.pop() if len(kinds) == 1 else "editor servers"
