"""From a request to a plan: checks (Drive, paths, --delete's source, space) and rsync's command line.

A backup's checks make no call per file: rsync walks and filters the tree (the many-small-files and links warnings
come from its output, ``output``); the free-space check takes a bound first and asks rsync's own dry run for the
exact figure only when the bound does not fit. A restore still scans its source (what the content root has newer)."""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..packages import apt_install
from .config import MOUNTINFO
from .drive import check_drive, on_colab
from .editors import EditorStep, backup_step
from .files import file_kind
from .output import OUT_FORMAT, symlink_warning
from .protocol import DEFAULT_FOLDER, SyncRefused
from .request import Request, _inside
from .scan import (
    Excluder,
    Scan,
    bytes_to_copy,
    check_free_space,
    existing_ancestor,
    has_file,
    has_room,
    read_ignore_file,
    scan,
)

TRASH_FOLDER = "colabssh/trash"  # dated folders of deleted and replaced files, relative to the Drive folder
TMP_FOLDER = ".colabssh-tmp"  # rsync's temp files, at the top of the destination (same filesystem: a rename)
ALWAYS_EXCLUDED = (
    "/drive/",  # the Drive mount itself: no recursion into Drive
    "/sample_data/",
    "/.config/",  # Colab keeps gcloud credentials there
    f"/{TMP_FOLDER}/",  # never copied, and never deleted by --delete (excluded files are protected)
    "/.colabssh-restoring",  # the cell's marker of a restore in progress (comeback.RESTORING)
    "__pycache__/",
    ".ipynb_checkpoints/",
    ".cache/",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".Trash-*/",
)
RSYNC_BASE = ("-rt", "--relative", "--omit-dir-times", "--one-file-system", "--modify-window=1")


@dataclass
class Plan:
    request: Request
    argv: list[str]
    tmp_dir: str
    trash: Optional[str]
    drive_cache: bool  # the destination is Google Drive's mount: files land in its local cache first
    scan: Optional[Scan]  # restore only: a backup's files are counted by rsync as it runs (``output``)
    warnings: list[tuple[str, str]]
    to_copy: Optional[int] = None  # bytes to copy, when the free-space check needed rsync's exact figure
    editors: Optional[EditorStep] = None  # a full backup's second step: the home's editor folders (archives)


def ensure_rsync(say: Callable[[str], None], is_root: Optional[bool] = None) -> str:
    """rsync's path; on a root runtime without it, install it with apt-get (as the cell does for sshd)."""
    found = shutil.which("rsync")
    if found:
        return found
    found = apt_install("rsync", "rsync", say, "rsync is missing on the runtime: installing it with apt-get...",
                        is_root=is_root)
    if found:
        return found
    raise SyncRefused("rsync is not installed on the runtime", "install it there: apt-get install rsync",
                      "no_rsync")


def check_tmp_folder(tmp: Path) -> None:
    """rsync's temp folder is emptied before each run: it must be a real folder, never a link (its target's files
    would be removed) nor anything else."""
    try:
        mode = os.lstat(tmp).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        raise SyncRefused(f"{tmp} is {file_kind(mode)}, not a folder: colabssh keeps rsync's temp files there and "
                          "empties it before each run",
                          f"move it away or remove it (`rm -- {tmp}` removes a link, not what it points to), then "
                          "run the sync again")


def utc_stamp() -> str:
    return time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())


def prepare(request: Request, rsync: str = "rsync", environ: Optional[Mapping[str, str]] = None,
            mountinfo: Path = MOUNTINFO,
            disk_usage: Callable[[Path], tuple[int, int, int]] = shutil.disk_usage) -> Plan:
    """Check everything that can be checked before a byte moves, and build rsync's command line."""
    environ = os.environ if environ is None else environ
    request = request.checked()  # a checked copy: the caller's request stays as it was
    if not request.content.is_dir():
        raise SyncRefused(f"the content root {request.content} does not exist", "re-run the colabssh cell",
                          "no_content")
    drive_cache = check_drive(request.drive, on_colab(environ, mountinfo), mountinfo)
    drive, content = request.drive, request.content
    trash_root = drive / TRASH_FOLDER
    backup = drive / request.folder
    if _inside(backup, trash_root) or _inside(trash_root, backup):
        raise SyncRefused(f"--to {request.folder} overlaps colabssh's trash folder {trash_root}",
                          f"choose another folder, e.g. --to {DEFAULT_FOLDER}")
    if _inside(content, backup):
        raise SyncRefused(f"the content root {content} is inside the backup folder {backup}",
                          "choose another --to folder")
    excludes = list(ALWAYS_EXCLUDED)
    if _inside(drive, content):  # keep the Drive folder (and so the backup) out of the copy, wherever it sits
        rel_drive = os.path.relpath(os.path.realpath(drive), os.path.realpath(content))
        if rel_drive == ".":
            raise SyncRefused(f"the Drive folder {drive} is the content root itself",
                              "set COLABSSH_DRIVE to a folder outside the content root")
        excludes.append(f"/{rel_drive}/")
    source, dest = request.source_root, request.dest_root
    if request.mode == "restore":
        if not source.is_dir():
            raise SyncRefused(f"there is no backup at {source}",
                              "name the folder the backup went to with --from (default "
                              f"{DEFAULT_FOLDER}, relative to the Drive folder)", "no_backup")
        if request.delete:
            raise SyncRefused("restore never deletes files", "leave out --delete")
    for rel in request.paths:
        if rel != "." and not os.path.lexists(source / rel):
            raise SyncRefused(f"{rel} does not exist in {source}", "give paths relative to that folder")
    ignored = read_ignore_file(content) if request.mode == "backup" else []
    filters = [f"--exclude={pattern}" for pattern in excludes + ignored + request.excludes]
    operands = [f"{source}/./{rel}" if rel != "." else f"{source}/./" for rel in request.paths] + [f"{dest}/"]
    found: Optional[Scan] = None
    warnings: list[tuple[str, str]] = []
    if request.mode == "restore":  # a restore lists what the content root has newer (rsync keeps those)
        found = scan(source, request.paths, Excluder(excludes + request.excludes),
                     newer_than=None if request.force else dest)
        if found.symlinks:
            warnings.append(symlink_warning(found.symlinks))
    elif request.delete and not has_file(source, request.paths, Excluder(excludes + ignored + request.excludes)):
        raise SyncRefused(f"refusing --delete: there is nothing to copy in {source}"
                          + ("" if request.paths == ["."] else f" ({' '.join(request.paths)})")
                          + ", so every file of the backup would go to the trash",
                          "a fresh runtime's content root is empty: run `colabssh restore` first, or sync "
                          "without --delete")
    to_copy: Optional[int] = None
    if not request.dry_run:
        places = [dest] + ([content] if drive_cache and request.mode == "backup" else [])
        # A bound first: what the source holds (restore: its scan; backup: the bytes in use on its filesystem).
        bound = found.bytes if found is not None else disk_usage(existing_ancestor(source))[1]
        if not has_room(bound, places, disk_usage):  # then the exact figure, from rsync itself (no Python walk)
            update = ["--update"] if request.mode == "restore" and not request.force else []
            to_copy = bytes_to_copy([rsync, *RSYNC_BASE, *update, "--dry-run", "--stats", *filters, "--",
                                     *operands])
            if to_copy is not None:
                check_free_space(to_copy, places, disk_usage)
    trash: Optional[str] = None
    tmp_dir = str(dest / TMP_FOLDER)
    if not request.dry_run:
        check_tmp_folder(Path(tmp_dir))
    argv = [rsync, *RSYNC_BASE, "--itemize-changes", f"--out-format={OUT_FORMAT}", "--8-bit-output",
            "--info=progress2,stats2"]
    if request.mode == "restore" and not request.force:
        argv.append("--update")
    if request.dry_run:
        argv.append("--dry-run")
    else:
        # Relative: rsync takes it from the destination's top. (An absolute --temp-dir makes rsync 3.4+ open every
        # component of its path for each file, three times slower with many small files.)
        argv.append(f"--temp-dir={TMP_FOLDER}")
    argv += filters
    if request.delete:
        trash = str(trash_root / utc_stamp() / request.folder)
        argv += ["--delete", "--backup", f"--backup-dir={trash}"]
    if request.bwlimit:
        argv.append(f"--bwlimit={request.bwlimit}")
    argv += ["--", *operands]
    editors = backup_step(request.home, drive) if request.keeps_editors and request.home is not None else None
    if editors is not None and not request.dry_run:
        store = Path(editors.store)
        if os.path.lexists(store) and not stat.S_ISDIR(os.lstat(store).st_mode):
            raise SyncRefused(f"{store} is {file_kind(os.lstat(store).st_mode)}, not a folder: colabssh keeps the "
                              "editor servers' folders there", "move it away, then sync again (or sync PATHs: "
                              "a partial sync leaves the editor folders alone)")
        check_tmp_folder(Path(editors.tmp_dir))
    return Plan(request=request, argv=argv, tmp_dir=tmp_dir, trash=trash, drive_cache=drive_cache, scan=found,
                warnings=warnings, to_copy=to_copy, editors=editors)
