"""An editor folder on Drive as a few archives, each rewritten only when its part of the folder changed.

Why: a server folder is ~7,900 small files, and Google Drive's mount pays a network round trip for the first read
of each (a new runtime's Drive cache is cold); a few large files come back in the time of their bytes.

The folder is cut into **units** that change independently: each entry of ``bin/`` (a server build), of
``cli/servers/`` (the same under the ``code`` CLI) and of ``extensions/`` (an extension), immutable once
installed; every other entry (``data/``, the ``code-<commit>`` CLI, ``extensions/extensions.json`` ...) is a unit
too. (``CONTAINERS`` are descended into; everything else is a unit.) A unit's files are listed by a walk that
applies ``editors.EXCLUDES`` and skips links, sockets and FIFOs; its **fingerprint** is a SHA-256 over the sorted
(path, size, mtime in ns, mode) of what the walk found.

On Drive, in ``<Drive>/colabssh/home/<folder>/``: ``index.json`` (``{"version": 1, "units": {unit: {"archive",
"fingerprint", "files", "bytes"}}}``) and one uncompressed tar per unit, ``archives/<16 hex>.tar`` (named after
the unit and its fingerprint), made by GNU tar from the walk's list (so it holds exactly those files, with their
modes and mtimes: Drive's mount keeps no execute bits, the archive does). A backup writes only the units whose
fingerprint changed (into the temp folder, then renamed), then replaces the index, then removes the archives it
no longer names: a kill at any point leaves an index that names complete archives. Anything else in the folder
(an old file-for-file copy of an earlier version) is removed once the new index is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .editors import EXCLUDES
from .files import UnsafeFile, file_kind, read_small, write_text
from .scan import Excluder

INDEX = "index.json"
ARCHIVES = "archives"
INDEX_MAX = 16 << 20
CONTAINERS = frozenset({"bin", "cli", "cli/servers", "extensions"})
ARCHIVE_NAME = re.compile(r"archives/[0-9a-f]{16}\.tar")
TAR_CREATE = ("--create", "--format=posix", "--pax-option=delete=atime,delete=ctime", "--no-recursion",
              "--null", "--verbatim-files-from", "--no-unquote")  # posix: mtimes to the ns; the list comes last
TAR_EXTRACT = ("--extract", "--preserve-permissions", "--no-same-owner")
TAR_WARNING = 1  # GNU tar: "file changed as we read it" (a running server), the archive is not what was listed
VANISHED, PARTIAL, IO_ERROR, SIGNALLED = 24, 23, 11, 20  # the step's exit codes, in rsync's vocabulary
RANK = (0, VANISHED, PARTIAL, IO_ERROR, SIGNALLED)  # the worst one met is the step's exit

Entry = tuple[str, os.stat_result]
RunTar = Callable[[list[str], Optional[bytes]], tuple[int, str]]  # argv, stdin -> exit code, its last line


class Damaged(Exception):
    """An index or archive on Drive that cannot be used (the message names it)."""


class Stopped(Exception):
    """tar was ended by a signal: the sync was cancelled."""


def walk_units(folder: Path) -> dict[str, list[Entry]]:
    """The units of FOLDER, each with its entries (folders and regular files, relative paths, sorted)."""
    excluder = Excluder(EXCLUDES)
    units: dict[str, list[Entry]] = {}

    def listing(rel_dir: str) -> list[tuple[str, os.stat_result]]:
        found = []
        try:
            with os.scandir(folder / rel_dir) as entries:
                for entry in entries:
                    rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # gone meanwhile
                    is_dir = stat.S_ISDIR(info.st_mode)
                    if (is_dir or stat.S_ISREG(info.st_mode)) and not excluder.excluded(rel, is_dir):
                        found.append((rel, info))
        except OSError:
            pass  # a folder gone or unreadable: nothing of it is kept
        return sorted(found)

    def whole(rel: str, info: os.stat_result, into: list[Entry]) -> None:
        into.append((rel, info))
        if stat.S_ISDIR(info.st_mode):
            for child, child_info in listing(rel):
                whole(child, child_info, into)

    def visit(rel_dir: str) -> None:
        for rel, info in listing(rel_dir):
            if stat.S_ISDIR(info.st_mode) and rel in CONTAINERS:
                visit(rel)
            else:
                units[rel] = []
                whole(rel, info, units[rel])

    visit("")
    return units


def fingerprint(entries: list[Entry]) -> str:
    """SHA-256 over the sorted (path, size, mtime_ns, mode) of the entries (a folder: its path and mode only, as
    its mtime moves with every log or cache file written in it)."""
    digest = hashlib.sha256()
    for rel, info in sorted(entries):
        if stat.S_ISDIR(info.st_mode):
            line = b"%s\0d\0%o\n" % (os.fsencode(rel), info.st_mode)
        else:
            line = b"%s\0%d\0%d\0%o\n" % (os.fsencode(rel), info.st_size, info.st_mtime_ns, info.st_mode)
        digest.update(line)
    return digest.hexdigest()


def counts(entries: list[Entry]) -> tuple[int, int]:
    files = [info.st_size for _rel, info in entries if stat.S_ISREG(info.st_mode)]
    return len(files), sum(files)


def archive_name(unit: str, print_: str) -> str:
    """``archives/<16 hex>.tar``: named after the unit and its fingerprint (a new fingerprint, a new name)."""
    digest = hashlib.sha256(os.fsencode(unit) + b"\0" + print_.encode()).hexdigest()
    return f"{ARCHIVES}/{digest[:16]}.tar"


def read_index(dest: Path) -> dict[str, dict]:
    """The units of DEST's index ({} when there is none); Damaged when it is there but not one we wrote."""
    path = dest / INDEX
    try:
        data = json.loads(read_small(path, INDEX_MAX))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise Damaged(f"{path} cannot be read ({exc})") from None
    units = data.get("units") if isinstance(data, dict) and data.get("version") == 1 else None
    if not isinstance(units, dict) or not all(
            isinstance(entry, dict) and isinstance(entry.get("archive"), str)
            and ARCHIVE_NAME.fullmatch(entry["archive"]) and isinstance(entry.get("fingerprint"), str)
            and isinstance(entry.get("files"), int) and isinstance(entry.get("bytes"), int)
            for entry in units.values()):
        raise Damaged(f"{path} is damaged (not an index colabssh wrote)")
    return units


def run_tar_plainly(argv: list[str], data: Optional[bytes], lock_fd: Optional[int] = None) -> tuple[int, str]:
    """tar with its output captured (the cell's restore): its exit code and its last line of output."""
    done = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env={**os.environ, "LC_ALL": "C"}, pass_fds=(lock_fd,) if lock_fd is not None else ())
    return done.returncode, last_line(done.stdout)


def last_line(output: bytes) -> str:
    lines = output.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else ""


@dataclass
class Report:
    """What the step did, in the summary's shape (``SyncResult.editors``)."""

    names: list[str]
    exit: int = 0
    files: int = 0
    bytes: int = 0
    files_copied: int = 0  # files in the units whose archive was (or would be) written
    bytes_copied: int = 0
    deleted: int = 0  # archives removed (or that would be)
    messages: list[str] = field(default_factory=list)

    def note(self, code: int, message: str) -> None:
        self.exit = max(self.exit, code, key=RANK.index)
        self.messages.append(message)

    def as_dict(self) -> dict:
        return {"names": self.names, "exit": self.exit, "files": self.files, "bytes": self.bytes,
                "files_copied": self.files_copied, "bytes_copied": self.bytes_copied, "deleted": self.deleted,
                "messages": self.messages[-5:]}


def back_up(step: dict, run_tar: RunTar, dry_run: bool) -> Report:
    """A full backup's editor step (STEP: ``EditorStep.as_spec()``): each folder's changed units archived."""
    report = Report(list(step["names"]))
    home, store, tmp_dir, tar = Path(step["home"]), Path(step["store"]), Path(step["tmp_dir"]), step["argv"][0]
    for name in report.names:
        if not (home / name).is_dir():
            continue  # gone since the plan: its backup stays as it was
        try:
            back_up_folder(home / name, store / name, tmp_dir, tar, run_tar, dry_run, report)
        except Stopped:
            report.note(SIGNALLED, "stopped: the sync was cancelled")
            break
        except OSError as exc:
            report.note(IO_ERROR, f"{name}: {exc}")
    return report


def back_up_folder(folder: Path, dest: Path, tmp_dir: Path, tar: str, run_tar: RunTar, dry_run: bool,
                   report: Report) -> None:
    for path in (dest, dest / ARCHIVES):  # written into: a link there would put the archives at its target
        if os.path.lexists(path) and not stat.S_ISDIR(os.lstat(path).st_mode):
            raise UnsafeFile(path, f"{file_kind(os.lstat(path).st_mode)}, not a folder (move it away)")
    try:
        old = read_index(dest)
    except Damaged as exc:
        old = {}
        report.messages.append(f"{exc}: every archive is written again")
    units: dict[str, dict] = {}
    for unit, entries in walk_units(folder).items():
        print_ = fingerprint(entries)
        files, size = counts(entries)
        entry: dict = {"archive": archive_name(unit, print_), "fingerprint": print_, "files": files, "bytes": size}
        previous = old.get(unit)
        if previous is not None and previous["fingerprint"] == print_ and (dest / previous["archive"]).is_file():
            units[unit] = previous
        elif (dest / entry["archive"]).is_file():  # written by a run cut off before its index: complete
            units[unit] = entry
        elif dry_run:
            units[unit] = entry
            report.files_copied, report.bytes_copied = report.files_copied + files, report.bytes_copied + size
        else:
            written = write_archive(folder, dest, tmp_dir, tar, run_tar, unit, entries, report)
            if written is not None:
                units[unit] = written
                report.files_copied += written["files"]
                report.bytes_copied += written["bytes"]
            elif previous is not None and (dest / previous["archive"]).is_file():
                units[unit] = previous  # the last complete archive of that unit, until the next sync
        if unit in units:
            report.files += units[unit]["files"]
            report.bytes += units[unit]["bytes"]
    named = {entry["archive"] for entry in units.values()}
    gone = {entry["archive"] for entry in old.values()} - named
    if dry_run:
        report.deleted += len(gone)
        return
    if units != old or not (dest / INDEX).is_file():
        dest.mkdir(parents=True, exist_ok=True)
        write_text(dest / INDEX, json.dumps({"version": 1, "units": units}, indent=0))
    report.deleted += remove_unnamed(dest, named)


def write_archive(folder: Path, dest: Path, tmp_dir: Path, tar: str, run_tar: RunTar, unit: str,
                  entries: list[Entry], report: Report) -> Optional[dict]:
    """UNIT's archive, written in the temp folder and renamed into place; its index entry, or None when tar
    failed (twice: the first failure may be a file that moved meanwhile, so the unit is walked again)."""
    for attempt in range(2):
        if attempt:
            entries = walk_units(folder).get(unit, [])
            if not entries:
                return None  # the unit itself is gone
        print_ = fingerprint(entries)
        archive = archive_name(unit, print_)
        tmp = tmp_dir / f"{dest.name}-{Path(archive).name}"
        listing = b"".join(os.fsencode(rel) + b"\0" for rel, _info in entries)
        code, last = run_tar([tar, *TAR_CREATE, f"--file={tmp}", f"--directory={folder}", "--files-from=-"],
                              listing)
        if code < 0:
            raise Stopped()
        if code == 0:
            (dest / ARCHIVES).mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest / archive)
            files, size = counts(entries)
            return {"archive": archive, "fingerprint": print_, "files": files, "bytes": size}
        try:
            os.unlink(tmp)
        except OSError:
            pass
    if code == TAR_WARNING:
        report.note(VANISHED, f"{dest.name}/{unit} changed while it was read (a running server): its archive on "
                              "Drive is the last complete one; the next sync writes it")
    else:
        report.note(PARTIAL, f"{dest.name}/{unit} not archived (tar exit {code}: {last})")
    return None


def remove_unnamed(dest: Path, named: set[str]) -> int:
    """Remove what the new index does not name: old archives (counted), temp files, an old file-for-file copy."""
    removed = 0
    for entry in os.scandir(dest):
        if entry.name in (INDEX, ARCHIVES):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)
    legacy = dest.parent / (dest.name + ".executables")  # the old copy's list of executable files
    if os.path.lexists(legacy):
        os.unlink(legacy)
    if not (dest / ARCHIVES).is_dir():
        return 0
    for entry in os.scandir(dest / ARCHIVES):
        if f"{ARCHIVES}/{entry.name}" in named:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
            continue
        os.unlink(entry.path)
        removed += entry.name.endswith(".tar")
    return removed


def restore_folder(dest: Path, target: Path, tar: str, run_tar: RunTar,
                   progress: Callable[[int, int, int, int], None] = lambda *counts: None) -> tuple[int, int]:
    """Extract every archive of DEST's index into TARGET (made here); returns (files, bytes). Damaged when the
    index or an archive is missing or damaged, or an archive does not extract cleanly (the caller removes
    TARGET)."""
    if not (dest / INDEX).is_file():
        raise Damaged(f"{dest / INDEX} is missing")
    units = read_index(dest)
    total_files = sum(entry["files"] for entry in units.values())
    total_bytes = sum(entry["bytes"] for entry in units.values())
    target.mkdir(parents=True)
    done = done_bytes = 0
    for unit in sorted(units):
        archive = dest / units[unit]["archive"]
        if not archive.is_file():
            raise Damaged(f"{archive} is missing (named by {dest / INDEX} for {unit})")
        code, last = run_tar([tar, *TAR_EXTRACT, f"--file={archive}", f"--directory={target}"], None)
        if code:
            raise Damaged(f"{archive} does not extract (tar exit {code}: {last})")
        done, done_bytes = done + 1, done_bytes + units[unit]["bytes"]
        progress(done, len(units), done_bytes, total_bytes)
    return total_files, total_bytes
