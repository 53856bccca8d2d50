"""Back the content root up to Drive (and restore it) ON the runtime: rsync under a lock, detached, its log followed.

Standard library only, POSIX only (fork, setsid, flock, /proc): ``colabssh sync`` runs this module with the
runtime's python (``colab_bootstrap.ship``: the package cached there, or sent); what the laptop shares with it is
``sync_protocol`` (portable). The cell imports it to run the same sync on a timer (``start_periodic``).

One run, from the laptop, in ONE remote command (each extra command costs a shell start):

1. take the lock ``STATE/sync/lock`` (``flock``, so a killed run releases it; the file records its holder's pid and
   process start time): a live holder is refused by name, one that is gone is taken over with a note;
2. check: the Drive folder is there (on Colab: a ``fuse.drive`` mount in ``/proc/self/mountinfo``), paths are
   inside the content root, ``--delete`` has a non-empty source, there is room for the copy; warn about many
   small files;
3. fork a worker into a session of its own (``setsid``, output to the job's log) that inherits the lock and runs
   rsync; a dropped SSH link does not cut it short (before the fork, a laptop gone or a SIGTERM stops the run);
4. follow the job's log, turning rsync's output into JSON events on stdout, until the worker has released the
   lock and written the result; exit with that run's exit code.

Every file it opens (the user's ``.colabsshignore``, its own state) is opened without blocking and only when it is
a regular file, and control files are read up to a cap (``open_regular``, ``read_small``): a FIFO, a link to
/dev/zero, a socket or a folder in their place is refused with one line, never waited on or read without end.
``cancel --token`` is the laptop's Ctrl-C: it stops the run that laptop started, whatever its phase.

rsync writes every file to a temp file in ``.colabssh-tmp`` at the top of the destination (same filesystem, so
the final step is a rename) and never uses ``--inplace``: no partial file ever appears under its final name, and
temp files a killed run leaves behind are removed by the next run. Deletions only with
``--delete``, and then deleted and replaced files are moved into a dated trash folder inside the Drive folder.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Optional

# What the laptop shares with this runner lives in sync_protocol (portable: the laptop never imports this POSIX-only
# module).
from .sync_protocol import (
    DEFAULT_FOLDER,
    EXIT_BAD_INPUT,
    EXIT_BAD_STATE,
    EXIT_LOCKED,
    EXIT_LOST,
    EXIT_NO_DRIVE,
    EXIT_NO_RSYNC,
    EXIT_NO_SPACE,
    EXIT_SIGNAL,
    RSYNC_ADVICE,  # noqa: F401  (re-exported: the reference's test reads it here)
    LogParser,
    SyncRefused,
    advice_for,
    clean_relative,
    human_size,
)

TRASH_FOLDER = "colabssh/trash"  # dated folders of deleted and replaced files, relative to the Drive folder
TMP_FOLDER = ".colabssh-tmp"  # rsync's temp files, at the top of the destination (same filesystem: a rename)
IGNORE_FILE = ".colabsshignore"
ALWAYS_EXCLUDED = (
    "/drive/",  # the Drive mount itself: no recursion into Drive
    "/sample_data/",
    "/.config/",  # Colab keeps gcloud credentials there
    f"/{TMP_FOLDER}/",  # never copied, and never deleted by --delete (excluded files are protected)
    "__pycache__/",
    ".ipynb_checkpoints/",
    ".cache/",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".Trash-*/",
)
MOUNTINFO = Path("/proc/self/mountinfo")
DRIVE_FSTYPE = "fuse.drive"
MANY_SMALL_FILES = 10_000
MANY_IN_ONE_FOLDER = 1_000
SMALL_FILE = 1 << 20
SPACE_MARGIN = 256 << 20
KEEP_JOBS = 10
POLL_SECONDS = 0.02
CONTROL_FILE_MAX = 1 << 20  # .colabsshignore: read only when it is a regular file of at most this size
STATE_FILE_MAX = 1 << 20  # job.json, result.json, current, pid files, periodic.id
LOCK_RECORD_MAX = 4096  # the lock's record of its holder
LOG_MAX = 1 << 30  # bytes of a job's log that are followed
TAKEOVER_SECONDS = 3.0  # how long a stale lock's leftovers get to let go (SIGTERM, then SIGKILL)
RECORD_WAIT = 0.5  # how long a held lock may go without a record of its holder (it writes one at once)
JOB_NAME = re.compile(r"\d{4}-\d\d-\d\dT\d{6}Z-\d+-\d{6}")


# --------------------------------------------------------------------------------------------- files that are files
# Everything the runner opens could have been replaced by something else: a FIFO (opening it blocks until a writer
# comes: forever, with the lock held), a link to /dev/zero (reading it never ends), a socket, a folder, or a huge
# file. So every open goes through open_regular (O_NONBLOCK, O_NOFOLLOW unless a link is legitimate, then fstat:
# a regular file or nothing) and every read of a control file through read_small (a size cap).
_KINDS = ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISLNK, "a symbolic link"))


def file_kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "a special file")


class UnsafeFile(OSError):
    """A file the runner will not open or read: not a regular file, or larger than what it reads."""

    def __init__(self, path: Path | str, why: str) -> None:
        super().__init__(errno.EINVAL, why, str(path))
        self.path = str(path)
        self.why = why

    def __str__(self) -> str:
        return f"{self.path} is {self.why}"


def _not_regular(path: Path | str, mode: int) -> UnsafeFile:
    return UnsafeFile(path, f"{file_kind(mode)}, not a regular file")


def open_regular(path: Path | str, flags: int = os.O_RDONLY, follow: bool = False) -> int:
    """A descriptor of PATH, which must be a regular file (made, private, with O_CREAT in FLAGS). Never blocks:
    O_NONBLOCK, and what is not a regular file is refused before and after the open (the fstat settles it); a
    symbolic link is refused unless FOLLOW. Raises UnsafeFile, or the OSError of the open."""
    try:
        before = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        if not flags & os.O_CREAT:
            raise
    else:
        if not stat.S_ISREG(before.st_mode):
            raise _not_regular(path, before.st_mode)
    extra = os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags | extra, 0o600)
    except OSError as exc:  # replaced since the look: a link (ELOOP), a FIFO without reader or a socket (ENXIO)...
        if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EOPNOTSUPP):
            raise
        try:
            now = os.stat(path) if follow else os.lstat(path)
        except OSError:
            raise exc from None
        raise _not_regular(path, now.st_mode) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, mode)
    return fd


def read_small(path: Path | str, limit: int, follow: bool = False) -> bytes:
    """The bytes of PATH, a regular file of at most LIMIT bytes (at most LIMIT + 1 are ever read)."""
    fd = open_regular(path, os.O_RDONLY, follow)
    try:
        size = os.fstat(fd).st_size
        data = b""
        while size <= limit and len(data) <= limit:
            chunk = os.read(fd, limit + 1 - len(data))
            if not chunk:
                break
            data += chunk
        if size > limit or len(data) > limit:
            raise UnsafeFile(path, f"larger than {human_size(limit)} ({human_size(max(size, len(data)))})")
        return data
    finally:
        os.close(fd)


def append_bytes(path: Path | str, data: bytes) -> None:
    """Append to a regular file (made if missing); a FIFO or link there is refused, never written to."""
    fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------- requests
@dataclass
class Request:
    """What to copy. ``mode`` "backup": content root -> Drive folder/FOLDER; "restore": the reverse."""

    mode: str
    content: Path
    drive: Path
    folder: str = DEFAULT_FOLDER
    paths: list[str] = field(default_factory=lambda: ["."])
    excludes: list[str] = field(default_factory=list)
    delete: bool = False
    dry_run: bool = False
    force: bool = False
    bwlimit: int = 0  # KiB/s, 0 = no limit

    @property
    def source_root(self) -> Path:
        return self.content if self.mode == "backup" else self.drive / self.folder

    @property
    def dest_root(self) -> Path:
        return self.drive / self.folder if self.mode == "backup" else self.content


def _inside(child: Path, parent: Path) -> bool:
    child_s, parent_s = os.path.realpath(child), os.path.realpath(parent)
    return os.path.commonpath([child_s, parent_s]) == parent_s


# --------------------------------------------------------------------------------------------- Drive
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
    if environ.get("COLAB_RELEASE_TAG") or Path("/var/colab/hostname").exists():
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
                              "drive.mount('/content/drive')), then sync again", "no_drive", EXIT_NO_DRIVE)
        return True
    if not drive.is_dir():
        raise SyncRefused(f"the Drive folder {drive} does not exist",
                          "on Colab, re-run the colabssh cell so it mounts Drive; elsewhere set COLABSSH_DRIVE "
                          "to an existing folder before starting the cell", "no_drive", EXIT_NO_DRIVE)
    return False


# --------------------------------------------------------------------------------------------- scanning
@dataclass
class Scan:
    """What the source holds (an estimate: rsync's own filter rules decide what is copied)."""

    files: int = 0
    bytes: int = 0
    small_files: int = 0
    symlinks: int = 0
    busiest_folder: str = ""
    busiest_count: int = 0
    newer_in_dest: list[str] = field(default_factory=list)  # restore: files the destination has newer


class Excluder:
    """rsync-like exclude patterns, close enough for counting: '/x' anchors, 'x/' means folders only, '+ x' includes,
    and the first rule that matches decides (as in rsync)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.rules: list[tuple[str, bool, bool, bool, bool]] = []  # pattern, anchored, dirs only, whole path, include
        for raw in patterns:
            pattern = raw.strip()
            include = pattern.startswith("+ ")
            if pattern.startswith(("- ", "+ ")):
                pattern = pattern[2:]
            if not pattern or pattern.startswith(("!", "#", ";")):
                continue
            dir_only = pattern.endswith("/")
            pattern = pattern.rstrip("/")
            anchored = pattern.startswith("/")
            pattern = pattern.lstrip("/")
            if pattern:
                whole = anchored or "/" in pattern or "**" in pattern
                self.rules.append((pattern, anchored, dir_only, whole, include))

    def excluded(self, rel: str, is_dir: bool) -> bool:
        name = rel.rsplit("/", 1)[-1]
        parts = rel.split("/")
        for pattern, anchored, dir_only, whole, include in self.rules:
            if dir_only and not is_dir:
                continue
            if not whole:
                matched = fnmatchcase(name, pattern)
            elif anchored:
                matched = fnmatchcase(rel, pattern)
            else:
                matched = any(fnmatchcase("/".join(parts[i:]), pattern) for i in range(len(parts)))
            if matched:
                return not include
        return False


_INLINE_COMMENT = re.compile(r"\s#.*$")


def ignore_patterns(text: str, where: str = IGNORE_FILE) -> list[str]:
    """The exclude patterns of a .colabsshignore text, one per line as rsync takes them (``+ ``/``- `` prefixes
    included). Blank lines and lines starting with ``#`` or ``;`` are comments (as in rsync's --exclude-from), and
    so is everything from a ``#`` that follows a space or tab (rsync would keep that in the pattern, which then
    matches nothing); the spaces around a pattern go. A ``!`` line is refused: it would clear colabssh's own
    exclusions (``/drive/`` among them). The patterns go to rsync as --exclude options."""
    patterns = []
    for number, line in enumerate(text.splitlines(), 1):
        pattern = _INLINE_COMMENT.sub("", line).strip()
        if not pattern or pattern.startswith(("#", ";")):
            continue
        if pattern == "!" or pattern.startswith("! "):
            raise SyncRefused(f"{where} line {number}: '!' would clear colabssh's own exclusions (drive/, "
                              ".config/, caches)", "remove that line")
        patterns.append(pattern)
    return patterns


def read_ignore_file(root: Path) -> list[str]:
    """The patterns of ROOT/.colabsshignore ([] without one). It is read only when it is a regular file (a link to
    one is fine) of at most CONTROL_FILE_MAX bytes: a FIFO would block the sync with its lock held, a link to
    /dev/zero would never end. Anything else, or an unreadable one, is refused, not skipped."""
    path = root / IGNORE_FILE
    try:
        data = read_small(path, CONTROL_FILE_MAX, follow=True)
    except FileNotFoundError:
        return []
    except UnsafeFile as exc:
        raise SyncRefused(f"cannot use {path}: it is {exc.why}",
                          f"make it a plain text file of at most {human_size(CONTROL_FILE_MAX)}, or remove it (it "
                          "lists what the backup leaves out)") from None
    except OSError as exc:
        raise SyncRefused(f"cannot read {path}: {exc.strerror or exc}",
                          "fix its permissions, or remove it (it lists what the backup leaves out)") from None
    return ignore_patterns(data.decode("utf-8", errors="replace"), str(path))


def iter_files(root: Path, paths: Sequence[str], excluder: Excluder) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every entry under the given paths, pruning excluded folders; no symlinks followed,
    no other filesystems entered. Folders are yielded too (their stat says so)."""
    for top in paths:
        start = root if top == "." else root / top
        try:
            info = start.lstat()
        except OSError:
            continue
        rel_top = "" if top == "." else top
        if rel_top:
            yield rel_top, info
        if not stat.S_ISDIR(info.st_mode):
            continue
        device = info.st_dev
        stack = [(start, rel_top)]
        while stack:
            folder, rel_folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                rel = f"{rel_folder}/{entry.name}" if rel_folder else entry.name
                try:
                    entry_info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                is_dir = stat.S_ISDIR(entry_info.st_mode)
                if excluder.excluded(rel, is_dir):
                    continue
                yield rel, entry_info
                if is_dir and entry_info.st_dev == device:
                    stack.append((Path(entry.path), rel))


def scan(root: Path, paths: Sequence[str], excluder: Excluder, newer_than: Optional[Path] = None) -> Scan:
    """Count what ROOT holds; with NEWER_THAN, also list the files that are newer there (restore's --update)."""
    result = Scan()
    per_folder: dict[str, int] = {}
    for rel, info in iter_files(root, paths, excluder):
        parent = rel.rsplit("/", 1)[0] if "/" in rel else "."
        per_folder[parent] = per_folder.get(parent, 0) + 1
        if stat.S_ISREG(info.st_mode):
            result.files += 1
            result.bytes += info.st_size
            if info.st_size < SMALL_FILE:
                result.small_files += 1
            if newer_than is not None:
                try:
                    if os.stat(newer_than / rel).st_mtime > info.st_mtime + 1:
                        result.newer_in_dest.append(rel)
                except OSError:
                    pass
        elif stat.S_ISLNK(info.st_mode):
            result.symlinks += 1
    if per_folder:
        result.busiest_folder, result.busiest_count = max(per_folder.items(), key=lambda item: item[1])
    return result


def bytes_to_copy(request: Request, excluder: Excluder) -> int:
    """The bytes of source files that differ from the destination's (a second, exact pass for a tight disk)."""
    total = 0
    for rel, info in iter_files(request.source_root, request.paths, excluder):
        if not stat.S_ISREG(info.st_mode):
            continue
        try:
            there = os.stat(request.dest_root / rel)
        except OSError:
            total += info.st_size
            continue
        if there.st_size != info.st_size or abs(there.st_mtime - info.st_mtime) > 1:
            total += info.st_size
    return total


def existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_free_space(need: int, places: Sequence[Path],
                     disk_usage: Callable[[Path], tuple[int, int, int]] = shutil.disk_usage) -> None:
    """Refuse when any of PLACES lacks room for NEED bytes plus a margin (10% + 256 MiB)."""
    wanted = need + need // 10 + SPACE_MARGIN
    for place in places:
        free = disk_usage(existing_ancestor(place))[2]
        if free < wanted:
            raise SyncRefused(
                f"not enough free space at {place}: {human_size(need)} to copy (plus a margin), "
                f"{human_size(free)} free",
                "free some space, or sync part of the tree (colabssh sync PATH...)", "no_space", EXIT_NO_SPACE)


# --------------------------------------------------------------------------------------------- plan
@dataclass
class Plan:
    request: Request
    argv: list[str]
    tmp_dir: str
    trash: Optional[str]
    drive_cache: bool  # the destination is Google Drive's mount: files land in its local cache first
    scan: Scan
    warnings: list[tuple[str, str]]


def ensure_rsync(say: Callable[[str], None], is_root: Optional[bool] = None) -> str:
    """rsync's path; on a root runtime without it, install it with apt-get (as the cell does for sshd)."""
    found = shutil.which("rsync")
    if found:
        return found
    is_root = os.geteuid() == 0 if is_root is None else is_root
    if is_root and shutil.which("apt-get"):
        say("rsync is missing on the runtime: installing it with apt-get...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "rsync"]):
            subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
        found = shutil.which("rsync")
        if found:
            return found
    raise SyncRefused("rsync is not installed on the runtime", "install it there: apt-get install rsync",
                      "no_rsync", EXIT_NO_RSYNC)


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
    request.content, request.drive = request.content.absolute(), request.drive.absolute()
    if request.mode not in ("backup", "restore"):
        raise SyncRefused(f"unknown sync mode {request.mode!r}")
    request.folder = clean_relative(request.folder, "the Drive folder")
    if request.folder == ".":
        raise SyncRefused("the backup folder cannot be the Drive folder itself",
                          f"name a folder inside it, e.g. --to {DEFAULT_FOLDER}")
    request.paths = sorted({clean_relative(p, "the path") for p in request.paths or ["."]})
    if "." in request.paths:
        request.paths = ["."]
    for pattern in request.excludes:
        if not pattern.strip() or any(ord(ch) < 32 for ch in pattern):
            raise SyncRefused(f"the exclude pattern {pattern!r} is empty or has a control character")
        if pattern.strip() == "!" or pattern.startswith("! "):
            raise SyncRefused(f"the exclude pattern {pattern!r} would clear colabssh's own exclusions (drive/, "
                              ".config/, caches)", "leave it out")
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
    excluder = Excluder(excludes + ignored + request.excludes)
    found = scan(source, request.paths, excluder,
                 newer_than=dest if request.mode == "restore" and not request.force else None)
    if request.delete and found.files == 0:
        raise SyncRefused(f"refusing --delete: there is nothing to copy in {source}"
                          + ("" if request.paths == ["."] else f" ({' '.join(request.paths)})")
                          + ", so every file of the backup would go to the trash",
                          "a fresh runtime's content root is empty: run `colabssh restore` first, or sync "
                          "without --delete")
    warnings: list[tuple[str, str]] = []
    if request.mode == "backup" and (found.small_files >= MANY_SMALL_FILES or found.busiest_count
                                     >= MANY_IN_ONE_FOLDER):
        crowded = (f"; {found.busiest_folder} alone holds {found.busiest_count:,} entries"
                   if found.busiest_count >= MANY_IN_ONE_FOLDER else "")
        warnings.append((
            f"{found.small_files:,} small files{crowded}: Google Drive is slow with many small files, and its "
            "mount can time out on big folders",
            f"pack them into an archive (tar) and back that up, or leave them out with {IGNORE_FILE}"))
    if found.symlinks:
        warnings.append((f"{found.symlinks} symbolic link(s) are not copied (Drive cannot hold links, and "
                         "colabssh never follows one out of the tree)", "copy what they point to instead"))
    if not request.dry_run:
        places = [dest] + ([content] if drive_cache and request.mode == "backup" else [])
        wanted = found.bytes + found.bytes // 10 + SPACE_MARGIN
        if any(disk_usage(existing_ancestor(p))[2] < wanted for p in places):
            check_free_space(bytes_to_copy(request, excluder), places, disk_usage)
    trash: Optional[str] = None
    tmp_dir = str(dest / TMP_FOLDER)
    if not request.dry_run:
        check_tmp_folder(Path(tmp_dir))
    argv = [rsync, "-rt", "--relative", "--omit-dir-times", "--one-file-system", "--modify-window=1",
            "--itemize-changes", "--8-bit-output", "--info=progress2,stats2"]
    if request.mode == "restore" and not request.force:
        argv.append("--update")
    if request.dry_run:
        argv.append("--dry-run")
    else:
        # Relative: rsync takes it from the destination's top. (An absolute --temp-dir makes rsync 3.4+ open every
        # component of its path for each file, three times slower with many small files.)
        argv.append(f"--temp-dir={TMP_FOLDER}")
    argv += [f"--exclude={pattern}" for pattern in excludes]
    argv += [f"--exclude={pattern}" for pattern in ignored + request.excludes]
    if request.delete:
        trash = str(trash_root / utc_stamp() / request.folder)
        argv += ["--delete", "--backup", f"--backup-dir={trash}"]
    if request.bwlimit:
        argv.append(f"--bwlimit={request.bwlimit}")
    argv += ["--"] + [f"{source}/./{rel}" if rel != "." else f"{source}/./" for rel in request.paths]
    argv.append(f"{dest}/")
    return Plan(request=request, argv=argv, tmp_dir=tmp_dir, trash=trash, drive_cache=drive_cache, scan=found,
                warnings=warnings)


# --------------------------------------------------------------------------------------------- state files
def write_text(path: Path, text: str) -> None:
    """Atomically, privately: a temp file beside PATH, made afresh (whatever was left at its name, a FIFO
    included, is removed first, and O_EXCL|O_NOFOLLOW make sure it is new), then a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data))


def read_json(path: Path, limit: int = STATE_FILE_MAX) -> Optional[dict]:
    """A JSON object from a small regular file; None when it is missing, not a regular file, too big or not JSON."""
    try:
        data = json.loads(read_small(path, limit))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def os_failure(exc: OSError, root: Path, what: str = "the sync could not start") -> SyncRefused:
    """An OSError as one line that names the path. On colabssh's own state (below ROOT, STATE/sync) it says what
    to do: remove it (the state is colabssh's, rebuilt as needed); elsewhere (Drive, the content root) it is a
    plain failure."""
    if isinstance(exc, UnsafeFile):
        path, detail = exc.path, str(exc)
    else:
        path = str(exc.filename2 or exc.filename or "")
        detail = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "") + \
            (f" -> {exc.filename2}" if exc.filename2 else "")
    if path and os.path.abspath(path).startswith(os.path.abspath(root) + os.sep):
        return SyncRefused(f"{what}: {detail}", f"it is colabssh's own state on the runtime: remove it (rm -r -- "
                           f"{path}), then run the sync again", "bad_state", EXIT_BAD_STATE)
    return SyncRefused(f"{what}: {detail}", "", "failed", 1)


# --------------------------------------------------------------------------------------------- processes
def process_start(pid: int) -> Optional[int]:
    """When the process started (clock ticks after boot: /proc/PID/stat field 22); None when it is gone or a
    zombie. With its pid it names one process for good: a pid that is reused later has another start time."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_started_at(pid: int) -> Optional[float]:
    """The process's start as a wall-clock time (boot time plus its start ticks)."""
    ticks = process_start(pid)
    try:
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    return None if ticks is None else boot + ticks / os.sysconf("SC_CLK_TCK")


def command_name(pid: int) -> str:
    """The name the process runs under (its argv[0], without folders); '' when it is gone."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return ""
    return os.path.basename(argv0.decode(errors="replace"))


def holders_of(path: Path) -> list[int]:
    """The other processes that have PATH open (from /proc/*/fd; links are read, never followed, so a hung
    filesystem elsewhere cannot block the look)."""
    target = os.path.realpath(path)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") == target:
                    found.append(int(entry))
                    break
            except OSError:
                continue
    return sorted(found)


def signal_process(pid: int, sig: int) -> None:
    """SIG to PID, and to its whole group when it leads one (rsync and its helpers run in a group of their own)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def clock(when: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(when))


def ago(when: float) -> str:
    seconds = int(max(time.time() - when, 0))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"


# --------------------------------------------------------------------------------------------- the lock
def holder_alive(record: dict) -> bool:
    """The process a lock record names is the one that took the lock: same pid, same start time, same boot."""
    pid, start = record.get("pid"), record.get("start")
    if not isinstance(pid, int) or not isinstance(start, int) or pid <= 0:
        return False
    if record.get("boot") and boot_id() and record.get("boot") != boot_id():
        return False
    return process_start(pid) == start


def describe_holder(record: dict) -> str:
    """'a backup started 14:02:11 UTC (2 min ago) by the laptop, pid 4242'."""
    origin = {"laptop": "the laptop", "periodic": "the cell's periodic sync"}.get(str(record.get("origin")),
                                                                                str(record.get("origin") or "?"))
    since = record.get("since")
    when = f" started {clock(since)} ({ago(since)})" if isinstance(since, (int, float)) else ""
    return f"a {record.get('mode') or 'sync'}{when} by {origin}, pid {record.get('pid')}"


def describe_process(pid: int) -> str:
    started = process_started_at(pid)
    return f"pid {pid} ({command_name(pid) or 'gone'}" + (f", running since {clock(started)})" if started else ")")


def _flock(fd: int) -> bool:
    import fcntl  # POSIX only, and only here: importing this module works anywhere

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class Jobs:
    """``STATE/sync``: the lock, one folder per run (job.json, log, result.json), a pointer to the latest.

    The lock is ``flock`` on ``STATE/sync/lock`` (the kernel releases it when the last descriptor closes: a killed
    run cannot leave it held), and the file records its holder: pid, process start time, boot, since when, what.
    rsync inherits the descriptor, so a run whose worker was killed keeps the lock while its rsync still writes;
    the next sync sees that the recorded holder is gone, stops those leftovers, and takes the lock over (a note
    says so). A live holder is refused, by name. A clean end empties the record."""

    def __init__(self, state: Path) -> None:
        self.root = state / "sync"
        self.lock = self.root / "lock"
        self.jobs = self.root / "jobs"
        self.current = self.root / "current"

    # ----- the lock
    def open_lock(self) -> int:
        self.jobs.mkdir(parents=True, exist_ok=True)
        try:
            return open_regular(self.lock, os.O_RDWR | os.O_CREAT)
        except UnsafeFile as exc:
            raise SyncRefused(f"the sync lock {exc}",
                              f"it is colabssh's own file on the runtime: remove it (rm -r -- {self.lock}), then run "
                              "the sync again", "bad_state", EXIT_BAD_STATE) from None

    def try_lock(self) -> Optional[int]:
        """The lock's descriptor, or None while another process holds it (no record is written: see acquire)."""
        fd = self.open_lock()
        if not _flock(fd):
            os.close(fd)
            return None
        return fd

    def is_locked(self) -> bool:
        try:
            fd = self.try_lock()
        except (SyncRefused, OSError):
            return False  # a lock file that is not one cannot be held
        if fd is None:
            return True
        os.close(fd)
        return False

    def holder(self, fd: Optional[int] = None) -> Optional[dict]:
        """The lock's record of its holder; None when there is none (or it cannot be read)."""
        try:
            data = read_small(self.lock, LOCK_RECORD_MAX) if fd is None else os.pread(fd, LOCK_RECORD_MAX + 1, 0)
            record = json.loads(data) if len(data) <= LOCK_RECORD_MAX else None
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("pid") else None

    def record(self, fd: int, about: dict, pid: Optional[int] = None) -> None:
        """Write the holder's record: ABOUT (role, origin, mode, token, since) and who it is (PID: this process)."""
        pid = os.getpid() if pid is None else pid
        data = json.dumps({"since": time.time(), **about, "pid": pid, "start": process_start(pid),
                           "boot": boot_id()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)

    def acquire(self, about: dict, note: Callable[[str], None]) -> int:
        """Take the lock and record this process as its holder; raise SyncRefused while a live holder has it."""
        fd = self.open_lock()
        try:
            self._take(fd, note)
            self.record(fd, about)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def release(self, fd: int) -> None:
        """Empty the record, then let go: a clean end leaves nothing that looks like a stale holder."""
        import fcntl

        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)  # for every copy of the descriptor (an rsync helper that lingers included)
        os.close(fd)

    def _take(self, fd: int, note: Callable[[str], None]) -> None:
        if _flock(fd):
            previous = self.holder(fd)
            if previous is not None and not holder_alive(previous):
                note(f"the previous sync ({describe_holder(previous)}) did not finish: its process is gone "
                     "(killed?); this run goes on")
            return
        record = self._held_by(fd)
        stopped = self._stop_leftovers(fd, record)
        note(f"took over the sync lock: its holder ({describe_holder(record)}) is gone; stopped what it left "
             f"holding the lock: {', '.join(f'pid {pid} (rsync)' for pid in stopped) or 'nothing'}")

    def _held_by(self, fd: int) -> dict:
        """The record of a held lock whose holder is gone (to take over); SyncRefused when it is alive, or when
        no record comes (a holder writes one at once; an older runner wrote none)."""
        deadline = time.monotonic() + RECORD_WAIT
        while True:
            record = self.holder(fd)
            if record is not None and holder_alive(record):
                raise self.busy(record)
            if record is not None:
                job = self.current_job()
                worker = worker_pid(job) if job is not None else None
                if worker is None:
                    return record
                raise self.busy({**record, "pid": worker})  # its worker lives on: the run is not stale
            if time.monotonic() > deadline:
                raise self.busy(None)
            time.sleep(POLL_SECONDS)

    def _stop_leftovers(self, fd: int, record: dict) -> list[int]:
        """Stop the rsync processes that still hold the lock for a holder that is gone (SIGTERM to their group,
        SIGKILL after a while) until the lock is ours; refuse when something else holds it."""
        stopped: list[int] = []
        deadline = time.monotonic() + TAKEOVER_SECONDS
        hard = False
        while not _flock(fd):
            now_held_by = self.holder(fd)
            if now_held_by is not None and holder_alive(now_held_by):
                raise self.busy(now_held_by)  # another sync took the lock meanwhile
            holders = holders_of(self.lock)
            for pid in holders:
                if pid not in stopped and command_name(pid) == "rsync":
                    signal_process(pid, signal.SIGTERM)
                    stopped.append(pid)
            if not hard and time.monotonic() > deadline - 1.0:
                for pid in stopped:
                    signal_process(pid, signal.SIGKILL)
                hard = True
            if time.monotonic() > deadline:
                others = ", ".join(describe_process(pid) for pid in holders if pid not in stopped)
                raise SyncRefused(
                    f"the sync lock is held by {others or 'an unknown process'}, but the sync that took it "
                    f"({describe_holder(record)}) is gone",
                    "if that is a leftover, stop it on the runtime (kill PID), then run the sync again", "locked",
                    EXIT_LOCKED)
            time.sleep(POLL_SECONDS)
        return stopped

    def busy(self, record: Optional[dict]) -> SyncRefused:
        if record is not None:
            detail = f": {describe_holder(record)}"
        else:
            holders = [pid for pid in holders_of(self.lock) if pid != os.getpid()]
            detail = f" (its lock is held by {', '.join(describe_process(pid) for pid in holders)})" if holders else ""
        return SyncRefused(f"a sync is already running on this runtime{detail}",
                           "wait for it to finish, or follow it with `colabssh sync --attach`", "locked", EXIT_LOCKED)

    # ----- jobs
    def new_job(self, plan: Plan, origin: str, token: str = "") -> Path:
        try:  # a folder at the pointer's name cannot be renamed over: refused before a job is made
            mode = os.lstat(self.current).st_mode
        except FileNotFoundError:
            mode = stat.S_IFREG
        if stat.S_ISDIR(mode):
            raise os_failure(_not_regular(self.current, mode), self.root, "cannot tell which sync ran last")
        job = self.jobs / f"{utc_stamp()}-{os.getpid()}-{time.monotonic_ns() % 1_000_000:06d}"
        job.mkdir(parents=True)
        spec = {"origin": origin, "token": token, "started": time.time(), "argv": plan.argv,
                "tmp_dir": plan.tmp_dir, "trash": plan.trash, "drive_cache": plan.drive_cache,
                "mode": plan.request.mode, "dry_run": plan.request.dry_run, "source": str(plan.request.source_root),
                "dest": str(plan.request.dest_root), "paths": plan.request.paths,
                "scan": {**asdict(plan.scan), "newer_in_dest": plan.scan.newer_in_dest[:100],
                         "newer_count": len(plan.scan.newer_in_dest)}}
        write_json(job / "job.json", spec)
        os.close(open_regular(job / "log", os.O_WRONLY | os.O_CREAT))
        write_text(self.current, job.name + "\n")
        self.prune(keep=job)
        return job

    def prune(self, keep: Path) -> None:
        for old in sorted(p for p in self.jobs.iterdir() if p != keep)[:-(KEEP_JOBS - 1) or None]:
            if (old / "result.json").exists():
                shutil.rmtree(old, ignore_errors=True)

    def job(self, name: str) -> Optional[Path]:
        """The job folder NAME, when NAME is a job's name and that is a real folder among the jobs."""
        if not JOB_NAME.fullmatch(name):
            return None
        job = self.jobs / name
        try:
            return job if stat.S_ISDIR(os.lstat(job).st_mode) else None
        except OSError:
            return None

    def current_job(self, strict: bool = False) -> Optional[Path]:
        """The latest job; None when there is none. STRICT: a pointer that cannot be read raises its OSError."""
        try:
            name = read_small(self.current, 256).decode(errors="replace").strip()
        except FileNotFoundError:
            return None
        except OSError:
            if strict:
                raise
            return None
        return self.job(name)

    def find_job(self, token: str) -> Optional[Path]:
        """The job started with TOKEN (the laptop's name for its run), newest first."""
        try:
            names = sorted(os.listdir(self.jobs), reverse=True)
        except OSError:
            return None
        for name in names[:2 * KEEP_JOBS]:
            job = self.job(name)
            if job is not None and token and (read_json(job / "job.json") or {}).get("token") == token:
                return job
        return None


# --------------------------------------------------------------------------------------------- the worker
def clear_tmp(tmp_dir: Path) -> None:
    """Remove what a killed run left in the temp folder (we hold the lock: nobody else uses it). A link or anything
    but a real folder there is refused (prepare refused it already): its target's files are not ours."""
    try:
        mode = os.lstat(tmp_dir).st_mode
    except FileNotFoundError:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return
    if not stat.S_ISDIR(mode):
        raise UnsafeFile(tmp_dir, f"{file_kind(mode)}, not a folder")
    for entry in list(os.scandir(tmp_dir)):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)


def run_rsync(job: Path, lock_fd: Optional[int], on_start: Callable[[subprocess.Popen], None] = lambda p: None) -> int:
    """Run the job's rsync with its output in the job's log; rsync inherits the lock. Returns rsync's exit code."""
    spec = read_json(job / "job.json") or {}
    if not spec.get("dry_run"):
        clear_tmp(Path(spec["tmp_dir"]))
        Path(spec["dest"]).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LC_ALL": "C"}
    log = open_regular(job / "log", os.O_WRONLY | os.O_APPEND)
    try:
        process = subprocess.Popen(spec["argv"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=env, pass_fds=(lock_fd,) if lock_fd is not None else (),
                                   start_new_session=True)  # its own group: all of rsync's processes together
    finally:
        os.close(log)
    write_text(job / "rsync.pid", f"{process.pid}\n")
    on_start(process)
    code = process.wait()
    end_group(process.pid)
    if spec.get("mode") == "restore":
        try:
            Path(spec["tmp_dir"]).rmdir()  # leave no folder of ours in the content root
        except OSError:
            pass
    return code


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def end_group(pgid: int, grace: float = 5.0) -> None:
    """rsync's helpers outlive its main process when it is killed or stopped: wait for them, then kill them,
    so a finished run has left nothing running (and nothing holding the lock)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return  # the usual end: nothing of rsync is left
    deadline = time.monotonic() + grace
    while group_members(pgid):
        if time.monotonic() > deadline:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        time.sleep(POLL_SECONDS)


def signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def finish(job: Path, code: int, cancelled: bool = False) -> None:
    write_json(job / "result.json", {"exit": code, "ended": time.time(), "cancelled": cancelled})


def note_in_log(job: Path, text: str) -> None:
    try:
        append_bytes(job / "log", f"colabssh: {text}\n".encode())
    except OSError:
        pass  # the state folder itself fails: nothing more to record


def worker_main(job: Path, lock_fd: int, jobs: Jobs) -> int:
    """The detached half: runs rsync, writes the result, releases the lock. SIGTERM stops rsync cleanly."""
    cancelled = threading.Event()
    child: list[subprocess.Popen] = []

    def stop(signum: int, _frame: object) -> None:
        cancelled.set()
        for process in child:
            signal_group(process, signal.SIGTERM)  # rsync removes its temp files and exits 20

    def started(process: subprocess.Popen) -> None:
        child.append(process)
        if cancelled.is_set():
            signal_group(process, signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # blocked by start() around the fork
    try:
        write_text(job / "worker.pid", f"{os.getpid()}\n")
        code = run_rsync(job, lock_fd, started)
    except Exception as exc:  # noqa: BLE001  (recorded in the log, never lost)
        note_in_log(job, f"the sync worker failed: {exc}")
        code = 1
    if code < 0:
        code = EXIT_SIGNAL
    try:
        finish(job, code, cancelled.is_set())  # the result first: whoever finds the lock free finds the result
    finally:
        jobs.release(lock_fd)
    return code


def spawn_worker(job: Path, lock_fd: int, jobs: Jobs) -> tuple[int, int]:
    """Fork the worker into a session of its own (setsid): no terminal, no SSH channel, its own log.

    A fork, not a new python: it starts in a millisecond and needs no source. Returns its pid and a pipe's read
    end that reaches end-of-file the moment it exits (it holds the only write end; rsync does not inherit it),
    so the follower hears of the end at once instead of at its next look."""
    log = open_regular(job / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    done_read, done_write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the worker
        code = 1
        try:
            os.setsid()
            os.close(done_read)
            null = os.open(os.devnull, os.O_RDONLY)
            for target, source in ((0, null), (1, log), (2, log)):
                os.dup2(source, target)
            os.chdir("/")
            code = worker_main(job, lock_fd, jobs)
        except BaseException:  # noqa: BLE001  (into worker.log; the follower reports a lost run)
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(done_write)
    os.close(log)
    return pid, done_read


def worker_pid(job: Path) -> Optional[int]:
    """The job's worker while it lives: the pid it recorded, still a session leader running this runner
    (a reused pid fails one of the two)."""
    try:
        pid = int(read_small(job / "worker.pid", 64).strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    alive = fields[0] != "Z" and int(fields[3]) == pid and b"sync_runner" in cmdline
    return pid if alive else None


# --------------------------------------------------------------------------------------------- following a job
def job_spec(job: Path, jobs: Jobs) -> dict:
    """The job's job.json ({} when it is missing: a run killed as it began). One that is there but is not a small
    regular file holding a JSON object is refused, naming it: a summary without it would say nothing true."""
    path = job / "job.json"
    try:
        data = json.loads(read_small(path, STATE_FILE_MAX))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise os_failure(exc, jobs.root, "cannot follow the sync") from None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise SyncRefused(f"cannot follow the sync: {path} is damaged", f"it is colabssh's own state on the runtime: "
                          f"remove it (rm -r -- {job}), then run the sync again", "bad_state", EXIT_BAD_STATE)
    return data


def summary(job: Path, parser: LogParser, result: Optional[dict], spec: Optional[dict] = None) -> dict:
    spec = (read_json(job / "job.json") or {}) if spec is None else spec
    code = EXIT_LOST if result is None else int(result.get("exit", 1))
    duration = (result or {}).get("ended", time.time()) - spec.get("started", time.time())
    return {
        "event": "result", "job": job.name, "exit": code, "mode": spec.get("mode"), "origin": spec.get("origin"),
        "dry_run": spec.get("dry_run", False), "source": spec.get("source"), "dest": spec.get("dest"),
        "paths": spec.get("paths", ["."]), "trash": spec.get("trash") if parser.deleted or parser.changed_files
        else None, "drive_cache": spec.get("drive_cache", False), "cancelled": bool((result or {}).get("cancelled")),
        "new_files": parser.new_files, "changed_files": parser.changed_files, "new_folders": parser.new_folders,
        "deleted": len(parser.deleted), "files_copied": parser.stats.get("files_copied", 0),
        "bytes_copied": parser.stats.get("bytes_copied", 0), "total_bytes": parser.stats.get("total_bytes", 0),
        "files_total": parser.stats.get("files_total", 0),
        "entries": parser.stats.get("entries", 0), "skipped": parser.skipped[:100],
        "kept_newer": spec.get("scan", {}).get("newer_in_dest", [])[:100],
        "kept_newer_count": spec.get("scan", {}).get("newer_count", 0), "messages": parser.messages[-20:],
        "seconds": round(max(duration, 0.0), 3), "ended": (result or {}).get("ended"),
        "advice": advice_for(code) if code != EXIT_LOST else
        "the sync's worker on the runtime was killed before it could record a result; run the sync again",
        "lost": result is None,
    }


def open_log(job: Path) -> int:
    """The job's log for reading: a regular file of at most LOG_MAX bytes (SyncRefused otherwise)."""
    try:
        fd = open_regular(job / "log")
        size = os.fstat(fd).st_size
    except OSError as exc:
        raise os_failure(exc, job.parent.parent, "cannot follow the sync") from None
    if size > LOG_MAX:
        os.close(fd)
        raise os_failure(UnsafeFile(job / "log", f"larger than {human_size(LOG_MAX)} ({human_size(size)})"),
                         job.parent.parent, "cannot follow the sync")
    return fd


class _Reader:
    """A job's log, read in chunks and fed to a parser up to LOG_MAX bytes (the rest is read and dropped)."""

    def __init__(self, fd: int, parser: LogParser) -> None:
        self.fd, self.parser, self.fed = fd, parser, 0

    def step(self) -> bool:
        chunk = os.read(self.fd, 1 << 16)
        if chunk and self.fed < LOG_MAX:
            self.parser.feed(chunk)
            self.fed += len(chunk)
        return bool(chunk)

    def drain(self) -> None:
        while self.step():
            pass


def parse_log(job: Path, parser: LogParser) -> None:
    """Feed the whole of a finished job's log to PARSER (nothing when the log is not a plain file)."""
    try:
        fd = open_log(job)
    except SyncRefused:
        return
    try:
        _Reader(fd, parser).drain()
    finally:
        os.close(fd)
    parser.close()


def follow(job: Path, jobs: Jobs, emit: Callable[[dict], None], done_fd: Optional[int] = None) -> int:
    """Stream the job's log as events until its result is written; then emit the summary; return its exit code.

    DONE_FD (from spawn_worker) wakes the follower when the worker exits; without it (attach) it looks every
    POLL_SECONDS."""
    import select

    spec = job_spec(job, jobs)
    parser = LogParser(emit, items=bool(spec.get("dry_run")))
    log = _Reader(open_log(job), parser)
    try:
        while True:
            if log.step():
                continue
            result = read_json(job / "result.json")
            if result is None and worker_pid(job) is None and not jobs.is_locked():
                result = read_json(job / "result.json")  # it may have finished between the two looks
                if result is None:
                    log.drain()
                    break
            if result is not None:
                log.drain()
                break
            if done_fd is None:
                time.sleep(POLL_SECONDS)
            elif select.select([done_fd], [], [], POLL_SECONDS)[0]:
                os.close(done_fd)  # end of file: the worker has exited; one more look settles it
                done_fd = None
    finally:
        os.close(log.fd)
        if done_fd is not None:
            os.close(done_fd)
    parser.close()
    report = summary(job, parser, result, spec)
    emit(report)
    return report["exit"]


# --------------------------------------------------------------------------------------------- entry points
def emit_json(event: dict) -> None:
    """One event per line on stdout. Items are not flushed one by one (10,000 files would be 10,000 writes
    through SSH): they go out with the next progress event, at most PROGRESS_EVERY later."""
    sys.stdout.write(json.dumps(event) + "\n")
    if event.get("event") != "item":
        sys.stdout.flush()


def _refused(exc: SyncRefused, emit: Callable[[dict], None]) -> int:
    try:
        emit({"event": "error", "kind": exc.kind, "message": exc.message, "hint": exc.hint, "exit": exc.exit_code})
    except BrokenPipeError:
        pass  # the laptop has gone: nobody to tell
    return exc.exit_code


class RunStopped(Exception):
    """The run stops before its worker exists: SIGTERM (the laptop's Ctrl-C), or the laptop went away."""


class _Stopper:
    """SIGTERM to the runner, which is how the laptop's Ctrl-C arrives (``cancel --token``): before the worker
    exists it stops the run where it is (RunStopped: the lock is released, nothing was copied); after, it is passed
    on to the worker, which stops rsync and records the run as cancelled."""

    def __init__(self) -> None:
        self.worker: Optional[int] = None

    def __call__(self, signum: int, frame: object) -> None:
        if self.worker is None:
            raise RunStopped("stopped before the copy began (Ctrl-C on the laptop)")
        try:
            os.kill(self.worker, signal.SIGTERM)
        except ProcessLookupError:
            pass

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGTERM, self)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def sigterm_blocked() -> Iterator[None]:
    """SIGTERM waits (it is not lost) until the worker's pid is known, so it reaches the worker, not a half-made
    start. The fork inherits the mask: the worker unblocks it once its own handler is in place."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def start(request: Request, state: Path, emit: Callable[[dict], None] = emit_json, origin: str = "laptop",
          token: str = "") -> int:
    """Lock, check, start the detached worker, follow it: the whole run in one remote command.

    Until the worker exists, a laptop that goes away (its events meet a broken pipe) or a SIGTERM stops the run
    and releases the lock: nothing was copied. Once it exists the run is detached: a dropped link does not stop it
    (a SIGTERM does: it is passed on)."""
    jobs = Jobs(state)
    about = {"role": "runner", "origin": origin, "mode": request.mode, "token": token, "since": time.time()}
    stopper = _Stopper()

    def say(event: dict) -> None:
        try:
            emit(event)
        except BrokenPipeError:
            raise RunStopped("the laptop went away before the copy began") from None

    with stopper.installed():
        lock_fd: Optional[int] = None
        job: Optional[Path] = None
        try:
            say({"event": "begin", "pid": os.getpid(), "token": token})
            lock_fd = jobs.acquire(about, lambda text: say({"event": "warning", "message": text, "hint": ""}))
            rsync = ensure_rsync(lambda text: say({"event": "message", "text": text}))
            plan = prepare(request, rsync)
            for message, hint in plan.warnings:
                say({"event": "warning", "message": message, "hint": hint})
            job = jobs.new_job(plan, origin, token)
            say({"event": "start", "job": job.name, "mode": request.mode, "source": str(request.source_root),
                 "dest": str(request.dest_root), "dry_run": request.dry_run, "files": plan.scan.files,
                 "bytes": plan.scan.bytes})
            with sigterm_blocked():
                worker, done_fd = spawn_worker(job, lock_fd, jobs)
                stopper.worker = worker
            jobs.record(lock_fd, {**about, "role": "worker", "job": job.name}, pid=worker)
            os.close(lock_fd)  # the worker holds the lock now
            lock_fd = None
        except SyncRefused as exc:
            return _refused(exc, emit)
        except RunStopped as exc:
            if job is not None:
                note_in_log(job, str(exc))
                finish(job, EXIT_SIGNAL, cancelled=True)
            return EXIT_SIGNAL
        except OSError as exc:
            return _refused(os_failure(exc, jobs.root), emit)
        finally:
            if lock_fd is not None:
                jobs.release(lock_fd)
        try:
            code = follow(job, jobs, emit, done_fd)
        except SyncRefused as exc:
            return _refused(exc, emit)
        os.waitpid(worker, 0)  # it has exited (its pipe said so): reap it
        return code


def attach(state: Path, emit: Callable[[dict], None] = emit_json) -> int:
    """Follow the running sync (or replay the latest one); exit with its code."""
    jobs = Jobs(state)
    try:
        job = jobs.current_job(strict=True)
    except OSError as exc:
        return _refused(os_failure(exc, jobs.root, "cannot tell which sync ran last"), emit)
    if job is None:
        return _refused(SyncRefused("no sync has run on this runtime yet", "start one with `colabssh sync`",
                                    "no_job", EXIT_BAD_INPUT), emit)
    try:
        return follow(job, jobs, emit)
    except SyncRefused as exc:
        return _refused(exc, emit)


def _cancel_current(jobs: Jobs, emit: Callable[[dict], None]) -> int:
    job = jobs.current_job()
    pid = worker_pid(job) if job is not None and read_json(job / "result.json") is None else None
    if pid is None or job is None:
        emit({"event": "cancelled", "running": False})
        return 0
    os.kill(pid, signal.SIGTERM)
    emit({"event": "cancelled", "running": True, "job": job.name})
    return 0


def _run_of(jobs: Jobs, token: str) -> tuple[Optional[int], Optional[Path]]:
    """The live process of the run started with TOKEN (its runner while it prepares, then its worker), and its job."""
    holder = jobs.holder()
    job = jobs.find_job(token)
    if holder is not None and holder.get("token") == token and holder_alive(holder):
        return int(holder["pid"]), job
    if job is not None and read_json(job / "result.json") is None:
        return worker_pid(job), job
    return None, job


def cancel(state: Path, emit: Callable[[dict], None] = emit_json, token: str = "", wait: float = 0.0) -> int:
    """Stop a sync cleanly (SIGTERM to its runner or worker: rsync removes its temp file, the result is recorded).

    Without TOKEN: the running one, whatever started it. With TOKEN: only the run the laptop started with it; WAIT
    seconds for it to end, then say what became of it: stopped, finished (it ended first), not_found (it never
    took the lock, and never will: its laptop is gone), lost, or running (it did not end within WAIT)."""
    jobs = Jobs(state)
    if not token:
        return _cancel_current(jobs, emit)
    target, job = _run_of(jobs, token)
    if target is not None:
        try:
            os.kill(target, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait
    while _run_of(jobs, token)[0] is not None and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    pid, job = _run_of(jobs, token)
    result = read_json(job / "result.json") if job is not None else None
    report = None
    if job is not None and result is not None:
        parser = LogParser()
        parse_log(job, parser)
        report = summary(job, parser, result)
    if pid is not None:
        state_of = "running"
    elif job is None:
        state_of = "stopped" if target is not None else "not_found"
    elif report is None:
        state_of = "lost"
    else:
        state_of = "stopped" if report["exit"] and report["cancelled"] else "finished"
    emit({"event": "cancelled", "running": target is not None, "state": state_of,
          "job": job.name if job is not None else None, "report": report})
    return 0


def run_once(request: Request, state: Path, origin: str = "periodic") -> dict:
    """One sync in this process (no worker, no follower): the cell's periodic sync. Returns the summary.

    The lock is released whatever happens (this process is the notebook's kernel: a leaked descriptor would hold
    it for the kernel's lifetime, and every later sync would be refused); a run that fails after its job was made
    records exit 1 and the reason in the job, so `colabssh sync --attach` replays it."""
    jobs = Jobs(state)
    notes: list[str] = []
    job: Optional[Path] = None
    try:
        lock_fd = jobs.acquire({"role": "periodic", "origin": origin, "mode": request.mode, "token": ""},
                               notes.append)
    except SyncRefused as exc:
        return {"event": "error", "kind": exc.kind, "message": exc.message, "hint": exc.hint, "exit": exc.exit_code}
    except OSError as exc:
        refused = os_failure(exc, jobs.root)
        return {"event": "error", "kind": refused.kind, "message": refused.message, "exit": refused.exit_code}
    try:
        plan = prepare(Request(**asdict(request)), ensure_rsync(lambda text: None))
        job = jobs.new_job(plan, origin)
        code = run_rsync(job, lock_fd)
        finish(job, EXIT_SIGNAL if code < 0 else code)
    except SyncRefused as exc:
        return {"event": "error", "kind": exc.kind, "message": exc.message, "hint": exc.hint,
                "exit": exc.exit_code}
    except Exception as exc:  # noqa: BLE001  (a Drive mount gone bad: ENOTCONN, EIO... reported, not raised)
        message = f"the sync failed: {type(exc).__name__}: {exc}"
        if job is not None:
            _record_failure(job, message)
        return {"event": "error", "kind": "failed", "message": message, "hint": "", "exit": 1}
    finally:
        jobs.release(lock_fd)  # the result is written first: whoever finds the lock free finds the result
    parser = LogParser()
    parse_log(job, parser)
    report = summary(job, parser, read_json(job / "result.json"))
    report["notes"] = notes
    return report


def _record_failure(job: Path, message: str) -> None:
    note_in_log(job, message)
    try:
        finish(job, 1)
    except OSError:
        pass  # the state folder itself fails: nothing more to record


def describe(report: dict) -> str:
    """One line for a log or the notebook's output."""
    if report.get("event") == "error":
        return f"not synced: {report['message']}"
    text = (f"{report['files_copied']} file(s) copied ({human_size(report['bytes_copied'])}), {report['deleted']} "
            f"moved to the trash, into {report['dest']} in {report['seconds']:.1f} s")
    if report["exit"]:
        text += f"; rsync exit {report['exit']}: {report['advice']}"
    elif report.get("drive_cache"):
        text += " (in Drive's local cache; Google Drive uploads it in the background)"
    for note in report.get("notes") or []:
        text += f" (note: {note})"
    return text


def start_periodic(content: Path | str, drive: Optional[Path | str], state: Path | str, every: int,
                   say: Callable[[str], None] = print) -> Optional[threading.Thread]:
    """The cell's option: back the content root up every EVERY seconds from the runtime itself (0: off).

    A daemon thread, which runs while ``STATE/sync/periodic.id`` holds its token: a later call (a re-run of the cell)
    takes over and the earlier thread ends at its next wake; a call with EVERY <= 0 or no Drive removes the file, so
    the earlier thread ends and none starts (the cell's ``colabssh_stop()`` removes it too). Each run is logged to
    ``STATE/sync/periodic.log``; the notebook hears of the first backup and of failures. Neither file is ever
    opened unless it is a regular file (a FIFO there would block the thread for good).
    """
    state = Path(state)
    marker = state / "sync" / "periodic.id"
    if every <= 0 or not drive:  # this run of the cell has no timer: the one an earlier run started must end
        try:
            marker.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            say(f"colabssh: could not stop the earlier periodic sync: cannot remove {marker}: {exc.strerror}")
        if every > 0:
            say("colabssh: periodic sync is off: this runtime has no Drive folder")
        return None
    token = f"{os.getpid()}-{time.time_ns()}"
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        write_text(marker, token + "\n")
    except OSError as exc:
        say(f"colabssh: periodic sync is off: cannot write {marker}: {exc.strerror or exc}")
        return None
    request = Request(mode="backup", content=Path(content), drive=Path(drive))
    log_path = state / "sync" / "periodic.log"
    say(f"colabssh: backing {content} up to {request.dest_root} every {every} s (log: {log_path})")

    def current() -> bool:
        try:
            return read_small(marker, 256).decode(errors="replace").strip() == token
        except OSError:
            return False

    def loop() -> None:
        last_problem, first = "", True
        while current():
            try:
                report = run_once(request, state)
            except Exception as exc:  # noqa: BLE001  (the thread must live on)
                report = {"event": "error", "kind": "crash", "message": f"{type(exc).__name__}: {exc}", "exit": 1}
            line = describe(report)
            try:
                append_bytes(log_path, f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n".encode())
            except OSError:
                pass
            failed = report.get("exit", 1) != 0 and report.get("kind") != "locked"
            if failed and line != last_problem:
                say(f"colabssh: periodic sync: {line}")
            elif not failed and first:
                say(f"colabssh: periodic sync: {line}")
                first = False
            last_problem = line if failed else ""
            time.sleep(every)

    thread = threading.Thread(target=loop, name="colabssh-periodic-sync", daemon=True)
    thread.start()
    return thread


def _parse_args(argv: Sequence[str]) -> tuple[str, dict]:
    import argparse

    parser = argparse.ArgumentParser(prog="sync_runner")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "attach", "cancel"):
        command = sub.add_parser(name)
        command.add_argument("--state", default=os.environ.get("COLABSSH_STATE") or
                             str(Path.home() / ".colabssh-runtime"))
        if name in ("start", "cancel"):
            command.add_argument("--token", default="")
        if name == "cancel":
            command.add_argument("--wait", type=float, default=0.0)
        if name == "start":
            command.add_argument("--mode", choices=("backup", "restore"), default="backup")
            command.add_argument("--content", default=os.environ.get("COLABSSH_CONTENT") or "/content")
            command.add_argument("--drive", default=os.environ.get("COLABSSH_DRIVE") or "")
            command.add_argument("--folder", default=DEFAULT_FOLDER)
            command.add_argument("--exclude", action="append", default=[])
            command.add_argument("--delete", action="store_true")
            command.add_argument("--dry-run", action="store_true")
            command.add_argument("--force", action="store_true")
            command.add_argument("--bwlimit", type=int, default=0)
            command.add_argument("paths", nargs="*")
    sub.add_parser("ensure-rsync")
    args = parser.parse_args(list(argv))
    return args.command, vars(args)


def main(argv: Optional[Sequence[str]] = None) -> int:
    command, args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if command == "ensure-rsync":
            try:
                ensure_rsync(lambda text: emit_json({"event": "message", "text": text}))
            except SyncRefused as exc:
                return _refused(exc, emit_json)
            return 0
        state = Path(args["state"]).absolute()
        if command == "attach":
            return attach(state)
        if command == "cancel":
            return cancel(state, token=args["token"], wait=min(max(args["wait"], 0.0), 10.0))
        if not args["drive"]:
            return _refused(SyncRefused("this runtime has no Drive folder",
                                        "on Colab, re-run the colabssh cell so it mounts Drive; elsewhere set "
                                        "COLABSSH_DRIVE before starting the cell", "no_drive", EXIT_NO_DRIVE),
                            emit_json)
        request = Request(mode=args["mode"], content=Path(args["content"]), drive=Path(args["drive"]),
                          folder=args["folder"], paths=args["paths"] or ["."], excludes=args["exclude"],
                          delete=args["delete"], dry_run=args["dry_run"], force=args["force"],
                          bwlimit=args["bwlimit"])
        return start(request, state, token=args["token"])
    except BrokenPipeError:  # the laptop went away; a detached run goes on
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when python flushes
        return 1


if __name__ == "__main__":
    sys.exit(main())
