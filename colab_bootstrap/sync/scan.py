"""Exclusions (colabssh's own and ``.colabsshignore``), --delete's look for one file to copy, a restore's scan,
free space (with rsync's exact figure of the bytes to copy). A backup's tree is walked by rsync, not here."""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Optional

from ..units import human_size
from .config import IGNORE_FILE, SPACE_MARGIN
from .files import UnsafeFile, read_small
from .protocol import SyncRefused

SMALL_FILE = 1 << 20
CONTROL_FILE_MAX = 1 << 20  # .colabsshignore: read only when it is a regular file of at most this size


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


def has_file(root: Path, paths: Sequence[str], excluder: Excluder) -> bool:
    """Whether ROOT holds a regular file that is not excluded under PATHS (--delete's check): the walk stops at the
    first one, and files are looked at before sub-folders, so a tree with files near its top costs a few calls."""
    return any(stat.S_ISREG(info.st_mode) for _rel, info in iter_files(root, paths, excluder))


_TRANSFERRED = re.compile(rb"^Total transferred file size: ([\d,]+)", re.MULTILINE)


def bytes_to_copy(argv: Sequence[str]) -> Optional[int]:
    """The bytes rsync would copy (ARGV: a ``--dry-run --stats`` run with the real run's filters and operands):
    the exact figure for a tight disk, from rsync's own walk. None when rsync gives no figure (the real run
    reports why)."""
    import subprocess

    done = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          env={**os.environ, "LC_ALL": "C"})
    match = _TRANSFERRED.search(done.stdout)
    return int(match.group(1).replace(b",", b"")) if match else None


def existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def has_room(need: int, places: Sequence[Path],
             disk_usage: Callable[[Path], tuple[int, int, int]] = shutil.disk_usage) -> bool:
    """Whether every one of PLACES has room for NEED bytes plus the margin (10% + 256 MiB)."""
    wanted = need + need // 10 + SPACE_MARGIN
    return all(disk_usage(existing_ancestor(place))[2] >= wanted for place in places)


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
                "free some space, or sync part of the tree (colabssh sync PATH...)", "no_space")
