"""rsync's output on the runtime, read fast: a job's log (itemized changes, progress2 updates split by CR, stats)
turned into counts, the latest progress, warnings and events.

The log of a first sync of 100,000 files is about 11 MB: it is taken in big chunks, cut into lines with
``bytes.split`` and sorted by their first bytes; only the latest progress line of a chunk is parsed (one event
at most every PROGRESS_EVERY), and only item lines are looked into (their size and folder: the many-small-files
warning). Memory stays bounded: a line is cut at LINE_MAX, the lists kept are capped, the per-folder counts too.
``protocol.LogParser`` (the laptop's, for push and pull) reads the same output line by line.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Optional

from ..units import count
from .config import IGNORE_FILE
from .protocol import _PROGRESS, LINE_MAX, PROGRESS_EVERY, STAT_KEYS

# rsync's --out-format for the runs colabssh starts: the item's size between its change and its name
# ("%i %n%L" is rsync's own with --itemize-changes), so the follower can count small files without a stat.
OUT_FORMAT = "%i %l %n%L"
SMALL_FILE = 1 << 20
MANY_SMALL_FILES = 10_000  # small files copied in one run: Drive is slow with them
MANY_IN_ONE_FOLDER = 1_000  # entries copied into one folder: Drive's mount can time out on it
FOLDERS_MAX = 1 << 16  # folders counted at a time (beyond: the least busy are dropped)
KEPT = 100  # names kept of skipped and deleted entries

_ITEM_FIRST = frozenset(b"<>ch.")
_ITEM_TYPE = frozenset(b"fdLDS")
_IGNORED = (b"sent ", b"total size is", b"Matched data", b"File list", b"Total bytes", b"created directory ",
            b"building file list", b"done", b"Number of ", b"Total file size", b"Total transferred", b"Literal data")
_STATS = {key.encode(): value for key, value in STAT_KEYS.items()}
_SKIPPING = b'skipping non-regular file "'
_DELETING = b"*deleting"
_REGULAR = re.compile(rb"\breg: ([\d,]+)")
# A block's lines at once (each pattern starts at a line's \n): files copied, the sizes of big ones, the folder of
# each file copied or folder made (not the top's "./"), and the lines that are neither items nor progress.
_FILES = re.compile(rb"\n[<>c]f[^\n ]{9} ")
_BIG = re.compile(rb"\n[<>c]f[^\n ]{9} (\d{7,}) ")
_PARENT = re.compile(rb"\n(?:[<>c]f[^\n ]{9}|cd\+{9}) \d+ (?!\./\n)(?:([^\n]*)/)?[^\n/]+/?(?=\n)")
_OTHER = re.compile(rb"\n((?:[^<>ch. \n]|[<>ch.](?![fdLDS][^\n]{9} )| (?![^\n]*%))[^\n]*)")


def small_files_warning(small: int, folder: str, entries: int, many_in_one: int = MANY_IN_ONE_FOLDER
                        ) -> tuple[str, str]:
    crowded = f"; {folder} alone holds {count(entries, 'entry')}" if entries >= many_in_one else ""
    return (f"{count(small, 'small file')} so far{crowded}: Google Drive is slow with many small files, and its "
            "mount can time out on big folders",
            f"pack them into an archive (tar) and back that up, or leave them out with {IGNORE_FILE}")


def symlink_warning(links: int) -> tuple[str, str]:
    return (f"{count(links, 'symbolic link')} {'is' if links == 1 else 'are'} not copied (Drive cannot hold links, "
            "and colabssh never follows one out of the tree; special files are skipped too)",
            "copy what they point to instead")


def _number(text: bytes) -> int:
    return int(text.replace(b",", b"") or 0)


class OutputReader:
    """rsync's output (as ``protocol.LogParser`` reads it: same totals, same events) -> counts and events, fast.

    ITEMS: each itemized change goes out as an "item" event (a dry run lists every change); otherwise they are
    counted and only the latest rides along in the progress events. SIZED: the lines carry OUT_FORMAT's size
    (jobs started by an older runner have none). WARN_SMALL: count the small files and the busiest folder of
    what is copied, and warn as soon as they pass MANY_SMALL_FILES or MANY_IN_ONE_FOLDER (a backup; the counts
    then are those so far: a long first sync to Drive warns while there is time to stop it)."""

    def __init__(self, emit: Optional[Callable[[dict], None]] = None, items: bool = True, sized: bool = True,
                 warn_small: bool = False) -> None:
        self.emit = emit or (lambda event: None)
        self.items, self.sized, self.warn_small = items, sized, warn_small
        self.many_small, self.many_in_one = MANY_SMALL_FILES, MANY_IN_ONE_FOLDER
        self._pending = b""
        self._cut = False  # the pending line was cut at LINE_MAX: the rest of it is dropped
        self._current = b""
        self._progress_line = b""
        self._transferred = (0, 0, 0)  # rsync's latest (xfr#N, to-chk=M/T): files done, left to check, in all
        self._progress_due = False
        self._last_progress = 0.0
        self.stats: dict[str, int] = {}
        self.new_files = self.changed_files = self.new_folders = 0
        self.deleted_count = 0
        self.deleted: list[str] = []  # the first KEPT
        self.skipped_count = 0
        self.skipped: list[str] = []  # the first KEPT
        self.messages: list[str] = []
        self.small_files = 0
        self.per_folder: dict[bytes, int] = {}
        self.busiest: tuple[bytes, int] = (b"", 0)
        self._warned_small = False
        self.warnings: list[tuple[str, str]] = []

    @property
    def current(self) -> str:
        return self._current.decode("utf-8", errors="replace")

    # ----- input
    def feed(self, data: bytes) -> None:
        """A chunk of output, of any size; a line is cut at LINE_MAX bytes (the rest of it is dropped)."""
        if self._cut:  # the end of a line cut at LINE_MAX: dropped up to its line break
            ends = [i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0]
            if not ends:
                return
            self._line(self._pending)
            self._pending, self._cut, data = b"", False, data[min(ends) + 1:]
        buf = self._pending + data if self._pending else data
        end = max(buf.rfind(b"\n"), buf.rfind(b"\r"))
        if end < 0:
            self._pending, self._cut = buf[:LINE_MAX], len(buf) > LINE_MAX
            return
        rest = buf[end + 1:]
        self._pending, self._cut = rest[:LINE_MAX], len(rest) > LINE_MAX
        self._block(buf[:end])
        self._maybe_progress()
        if self.warn_small and not self._warned_small:
            self._check_small()

    def close(self) -> None:
        if self._pending:
            self._line(self._pending)
            self._pending, self._cut = b"", False
        if self._progress_due:
            self._emit_progress()
        if self.warn_small and not self._warned_small:
            self._check_small()
        if self.skipped_count:
            self._warn(symlink_warning(self.skipped_count))

    # ----- lines
    def _block(self, block: bytes) -> None:
        if b"\r" in block:
            block = block.replace(b"\r", b"\n")
        if not self.items and self.sized:
            self._bulk(block)
            return
        progress = b""
        for line in block.split(b"\n"):
            head = line[:1]
            if head == b" " and b"%" in line:  # progress2 (right-aligned): only the latest matters
                progress = line
            elif len(line) > 12 and line[11] == 32 and line[0] in _ITEM_FIRST and line[1] in _ITEM_TYPE:
                self._item(line)
            elif line:
                self._line(line)
        if progress:
            self._progress_line = progress
            self._progress_due = True

    def _bulk(self, block: bytes) -> None:
        """BLOCK's lines counted a whole block at a time (no item events: a real run): the item lines by patterns
        run over the block in C, the few other lines (stats, messages, deletions, skipped links) one by one."""
        lines = b"\n" + block + b"\n"
        files = len(_FILES.findall(lines))
        if files:
            new = sum(lines.count(b"\n" + kind + b"f+++++++++ ") for kind in (b">", b"<", b"c"))
            self.new_files += new
            self.changed_files += files - new
            if self.warn_small:
                self.small_files += files - sum(1 for size in _BIG.findall(lines) if int(size) >= SMALL_FILE)
        self.new_folders += lines.count(b"\ncd+++++++++ ")
        if self.warn_small and (files or b"\ncd" in lines):
            for folder, times in Counter(_PARENT.findall(lines)).items():
                self._count_in(folder, times)
        for line in _OTHER.findall(lines):
            self._line(line)
        pos, looked = len(block), 0  # the latest item (the progress events name it) and progress line
        progress = b""
        named = False
        # both are looked for: rsync writes a file's item line after that file's progress lines, so a block often
        # ends with an item, and the latest progress line stands before it
        while pos > 0 and looked < 64 and not (progress and named):
            start = block.rfind(b"\n", 0, pos) + 1
            line = block[start:pos]
            if not progress and line[:1] == b" " and b"%" in line:
                progress = line
            elif not named and len(line) > 12 and line[11] == 32 and (line[0] in _ITEM_FIRST
                                                                       and line[1] in _ITEM_TYPE
                                                                       or line.startswith(_DELETING)):
                rest = line[12:]
                space = rest.find(b" ")
                self._current = rest[space + 1:] if space > 0 and rest[:space].isdigit() else rest
                named = True
            pos, looked = start - 1, looked + 1
        if progress:
            self._progress_line = progress
            self._progress_due = True

    def _item(self, line: bytes) -> None:
        rest = line[12:]
        size = -1
        if self.sized:
            space = rest.find(b" ")
            if space > 0 and rest[:space].isdigit():
                size, rest = int(rest[:space]), rest[space + 1:]
        kind, first = line[1], line[0]
        if kind == 102 and first in b"<>c":  # a file copied (f)
            if line[2:11] == b"+++++++++":
                self.new_files += 1
            else:
                self.changed_files += 1
            if self.warn_small:
                if 0 <= size < SMALL_FILE:
                    self.small_files += 1
                self._count_in(rest.rpartition(b"/")[0])
        elif kind == 100 and line[2:11] == b"+++++++++":  # a folder created (d)
            self.new_folders += 1
            if self.warn_small and rest != b"./":  # the destination's top itself is in no folder
                self._count_in(rest.rstrip(b"/").rpartition(b"/")[0])
        self._current = rest
        if self.items:
            self.emit({"event": "item", "change": line[:11].decode("utf-8", errors="replace"),
                       "path": rest.decode("utf-8", errors="replace")})

    def _check_small(self) -> None:
        folder, entries = self.busiest
        if self.small_files >= self.many_small or entries >= self.many_in_one:
            self._warned_small = True
            self._warn(small_files_warning(self.small_files, folder.decode("utf-8", errors="replace") or ".",
                                           entries, self.many_in_one))

    def _count_in(self, folder: bytes, times: int = 1) -> None:
        counts = self.per_folder
        now = counts[folder] = counts.get(folder, 0) + times
        if now > self.busiest[1]:
            self.busiest = (folder, now)
        if len(counts) > FOLDERS_MAX:  # keep the busiest half
            keep = sorted(counts.values())[len(counts) // 2]
            self.per_folder = {name: n for name, n in counts.items() if n > keep}

    def _line(self, line: bytes) -> None:
        if line.startswith(_DELETING):
            path = line[12:]
            if self.sized:
                space = path.find(b" ")
                if space > 0 and path[:space].isdigit():
                    path = path[space + 1:]
            else:
                path = line[len(_DELETING):].lstrip(b" ")
            self.deleted_count += 1
            text = path.decode("utf-8", errors="replace")
            if len(self.deleted) < KEPT:
                self.deleted.append(text)
            self._current = path
            if self.items:
                self.emit({"event": "item", "change": "*deleting", "path": text})
            return
        if line.startswith(_SKIPPING) and line.endswith(b'"'):
            name = line[len(_SKIPPING):-1].decode("utf-8", errors="replace")
            self.skipped_count += 1
            if len(self.skipped) < KEPT:
                self.skipped.append(name)
                self.emit({"event": "skipped", "path": name})
            return
        key, sep, value = line.partition(b": ")
        if sep and key in _STATS:
            figure = value.split(b" ", 1)[0]
            if figure.replace(b",", b"").isdigit():
                self.stats[_STATS[key]] = _number(figure)
                if key == b"Number of files":
                    regular = _REGULAR.search(value)
                    self.stats["files_total"] = _number(regular.group(1)) if regular else 0
                return
        text = line[:LINE_MAX].decode("utf-8", errors="replace").strip()
        if not text or line.startswith(_IGNORED):
            return
        self.messages.append(text)
        del self.messages[:-40]
        # rsync's own line (the laptop shows those with --verbose, or when the run fails), or colabssh's note
        self.emit({"event": "message", "text": text, "rsync": not text.startswith("colabssh: ")})

    # ----- events
    def _warn(self, warning: tuple[str, str]) -> None:
        self.warnings.append(warning)
        self.emit({"event": "warning", "message": warning[0], "hint": warning[1]})

    def _maybe_progress(self) -> None:
        if self._progress_due:
            now = time.monotonic()
            if now - self._last_progress >= PROGRESS_EVERY:
                self._last_progress = now
                self._emit_progress()

    def _emit_progress(self) -> None:
        self._progress_due = False
        match = _PROGRESS.match(self._progress_line.decode("ascii", errors="replace"))
        if match is None:
            return
        if match.group(5):  # a line in the middle of a file has no (xfr#N, ...): the files done stay as they were
            self._transferred = (int(match.group(5)), int(match.group(6)), int(match.group(7)))
        files, to_check, total = self._transferred
        self.emit({"event": "progress", "current": self.current,
                   "bytes": int(match.group(1).replace(",", "")), "percent": int(match.group(2)),
                   "rate": match.group(3), "files": files, "to_check": to_check, "total": total})
