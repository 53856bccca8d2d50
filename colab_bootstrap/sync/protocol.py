"""What both sides of `colabssh sync` speak: the laptop's command line for the runner, the runner's exit codes,
path rules, rsync's exit codes in plain words, and the parser that turns rsync's output into events.

Standard library only, and portable: the laptop imports this module (on Windows too), never the rest of
``colab_bootstrap.sync``, which needs POSIX (fork, setsid, flock, /proc). On the runtime it comes with the
package, from the cell's bundle or the one ``colabssh sync`` ships (``colab_bootstrap.ship``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

from ..errors import BootstrapError

DEFAULT_FOLDER = "colabssh/content"  # the backup, relative to the Drive folder
PROGRESS_EVERY = 0.1  # seconds between progress events
LINE_MAX = 64 << 10  # characters of one line of rsync's output that are kept (a longer one is cut)

# The runner's own exit codes, for runs that never reached rsync (rsync's codes are all below 64).
EXIT_BAD_INPUT = 64
EXIT_NO_DRIVE = 65
EXIT_NO_SPACE = 66
EXIT_LOCKED = 67
EXIT_NO_RSYNC = 68
EXIT_LOST = 69  # the run ended without a result: its worker was killed
EXIT_BAD_STATE = 70  # a file of colabssh's own state on the runtime is not what it wrote (a FIFO, a folder...)
EXIT_SIGNAL = 20  # rsync's own code for "killed by a signal"
STOPPED_EXITS = (19, EXIT_SIGNAL)  # rsync stopped by a signal: SIGUSR1 (19; one half of rsync told by the other
# that it was stopped) or SIGINT, SIGTERM, SIGHUP (20)

RSYNC_ADVICE = {
    1: "rsync refused colabssh's options (is rsync on the runtime very old?); see the messages above",
    2: "rsync's two sides speak different protocol versions; update rsync on the runtime",
    3: "a source or destination folder is missing or cannot be read; check the paths",
    5: "rsync could not start its other half",
    10: "the connection between rsync's two sides broke",
    11: "reading or writing a file failed: the disk or Drive may be full (Drive stages files on the "
        "runtime's disk; see `df -h /content`), or a file is not accessible",
    12: "rsync's data stream broke off (the other side stopped or ran out of space); run it again",
    13: "rsync reported an internal error; see the messages above",
    14: "rsync's helper processes failed; run it again",
    19: "the sync was interrupted (rsync was stopped); run it again: every file under its final name is "
        "complete, and the next run copies what is missing",
    20: "the sync was interrupted (killed or stopped); run it again: every file under its final name is "
        "complete, and the next run copies what is missing",
    21: "rsync lost track of a helper process; run it again",
    22: "rsync ran out of memory; sync fewer files at a time (PATH arguments)",
    23: "some files could not be copied (see the messages above: permissions, names Drive cannot hold, "
        "files that changed); the rest was copied",
    24: "some files vanished while they were being copied (is a job still writing them?); the rest was "
        "copied: run it again once they settle",
    25: "rsync stopped deleting at its --max-delete limit",
    30: "rsync timed out waiting for data; run it again",
    35: "rsync timed out waiting for its other half; run it again",
}


def advice_for(code: int) -> str:
    if code == 0:
        return ""
    return RSYNC_ADVICE.get(code, f"rsync ended with exit code {code}; see the messages above")


# The one table of refusals: each kind (the "error" event names it), the runner's exit code, and the exit code of
# the laptop's colabssh for it (colabssh_cli.errors: 1 failure, 2 bad input, 4 missing tool). rsync's own codes
# (below 64) pass through both unchanged; EXIT_LOST is a failure (1) on the laptop.
REFUSALS: dict[str, tuple[int, int]] = {
    "bad_input": (EXIT_BAD_INPUT, 2),
    "no_backup": (EXIT_BAD_INPUT, 2),  # restore: no backup in the Drive folder
    "no_job": (EXIT_BAD_INPUT, 2),  # cancel/attach: no such run
    "no_content": (EXIT_BAD_INPUT, 1),
    "no_drive": (EXIT_NO_DRIVE, 1),
    "no_space": (EXIT_NO_SPACE, 1),
    "locked": (EXIT_LOCKED, 1),
    "no_rsync": (EXIT_NO_RSYNC, 4),
    "failed": (1, 1),
    "bad_state": (EXIT_BAD_STATE, 1),
}


@dataclass
class SyncResult:
    """How a run ended, as both sides hold it: the runner's "result" event (``to_event``), read back by the laptop
    (``from_event``; a key it does not know is left out, a missing one takes its default)."""

    job: str = ""
    exit: int = 1  # rsync's exit code, or EXIT_LOST
    mode: Optional[str] = None  # backup | restore
    origin: Optional[str] = None  # laptop | periodic
    dry_run: bool = False
    source: Optional[str] = None
    dest: Optional[str] = None
    paths: list[str] = field(default_factory=lambda: ["."])
    trash: Optional[str] = None  # where deleted and replaced files went, when any did
    drive_cache: bool = False  # written to Drive's local cache (Colab): Drive still uploads it
    cancelled: bool = False
    new_files: int = 0
    changed_files: int = 0
    new_folders: int = 0
    deleted: int = 0
    files_copied: int = 0
    bytes_copied: int = 0
    total_bytes: int = 0
    files_total: int = 0
    entries: int = 0
    skipped: list[str] = field(default_factory=list)  # symbolic links and special files (the first 100)
    kept_newer: list[str] = field(default_factory=list)  # newer at the destination, kept (the first 100)
    kept_newer_count: int = 0
    messages: list[str] = field(default_factory=list)  # rsync's last messages
    seconds: float = 0.0
    ended: Optional[float] = None  # time.time() when it ended
    advice: str = ""
    lost: bool = False  # the worker was killed before it recorded a result
    editors: Optional[dict] = None  # a full backup's editor folders (``sync.editors``): names, exit, files, bytes...

    def to_event(self) -> dict[str, Any]:
        return {"event": "result", **asdict(self)}

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> SyncResult:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in event.items() if key in known})


def laptop_exit(kind: str) -> int:
    """The laptop's exit code for a refusal of KIND (an unknown kind: a failure)."""
    return REFUSALS.get(kind, (1, 1))[1]


class SyncRefused(BootstrapError):
    """A sync that must not start; ``kind`` and ``exit_code`` (from REFUSALS unless given) tell the laptop which."""

    def __init__(self, message: str, hint: str = "", kind: str = "bad_input", exit_code: Optional[int] = None):
        super().__init__(message, hint)
        self.kind = kind
        self.exit_code = REFUSALS.get(kind, (1, 1))[0] if exit_code is None else exit_code


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """TEXT safe for a terminal: control characters (C0, DEL, C1: escape sequences, carriage returns, bells) are
    written as rsync writes them, ``\\#ooo`` (octal), so a file name cannot move the cursor or recolour the screen."""
    return _CONTROL.sub(lambda match: f"\\#{ord(match.group()):03o}", str(text))


def clean_relative(text: str, what: str) -> str:
    """A path inside a root: no absolute paths, no '..', no control characters; '' and '.' mean the root."""
    if any(ord(ch) < 32 for ch in text):
        raise SyncRefused(f"{what} {text!r} has a control character in it", "rename it")
    parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
    if text.startswith("/") or ".." in parts:
        raise SyncRefused(f"{what} {text!r} must be a path inside its root (no leading '/', no '..')",
                          "give it relative to the content root, e.g. `project/data`")
    return "/".join(parts) or "."


@dataclass
class SyncOptions:
    """What one run is asked to do, in the terms both sides use: the laptop fills it from its command line and sends
    it as ``runner_args``; the runner's ``main`` reads those back into one (``from_args``) and makes its Request of
    it. Where (the content root, Drive) is the runtime's to say. ``check_options`` checks it on both sides."""

    mode: str = "backup"  # backup (sync) | restore
    paths: list[str] = field(default_factory=list)  # relative to the content root; none: all of it
    folder: str = DEFAULT_FOLDER  # relative to the Drive folder
    excludes: list[str] = field(default_factory=list)
    delete: bool = False
    dry_run: bool = False
    force: bool = False
    bwlimit: int = 0  # KiB/s, 0 = no limit

    def runner_args(self) -> list[str]:
        """The runner's ``start`` options for these (the paths go after ``--``, by the caller)."""
        args = [f"--exclude={pattern}" for pattern in self.excludes]
        args += [flag for flag, on in (("--delete", self.delete), ("--dry-run", self.dry_run),
                                       ("--force", self.force)) if on]
        return args + ([f"--bwlimit={self.bwlimit}"] if self.bwlimit else [])

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> SyncOptions:
        """From the runner's parsed ``start`` arguments (argparse's names)."""
        return cls(mode=args["mode"], paths=list(args["paths"]), folder=args["folder"], excludes=list(args["exclude"]),
                   delete=args["delete"], dry_run=args["dry_run"], force=args["force"], bwlimit=args["bwlimit"])


def check_options(mode: str, folder: str, excludes: Sequence[str], paths: Sequence[str] = (".",),
                  what: str = "the path") -> tuple[str, list[str]]:
    """The one check of a run's options, by the laptop before it sends them and by the runner as it takes them:
    the clean Drive folder and paths (sorted, "." alone when it is there), or SyncRefused (bad_input)."""
    if mode not in ("backup", "restore"):
        raise SyncRefused(f"unknown sync mode {mode!r}")
    folder = clean_relative(folder, "the Drive folder")
    if folder == ".":
        raise SyncRefused("the backup folder cannot be the Drive folder itself",
                          f"name a folder inside it, e.g. {DEFAULT_FOLDER}")
    for pattern in excludes:
        if not pattern.strip() or any(ord(ch) < 32 for ch in pattern):
            raise SyncRefused(f"the exclude pattern {pattern!r} is empty or has a control character")
        if pattern.strip() == "!" or pattern.startswith("! "):
            raise SyncRefused(f"the exclude pattern {pattern!r} would clear colabssh's own exclusions (drive/, "
                              ".config/, caches)", "leave it out")
    cleaned = sorted({clean_relative(p, what) for p in paths or ["."]})
    return folder, ["."] if "." in cleaned else cleaned


# --------------------------------------------------------------------------------------------- rsync's output
_PROGRESS = re.compile(r"^\s*([\d,]+)\s+(\d+)%\s+(\S+)\s+(\S+)(?:\s+\(xfr#(\d+), (?:to|ir)-chk=(\d+)/(\d+)\))?")
_ITEM = re.compile(r"^([<>ch.][fdLDS][.+?a-zA-Z ]{9}) (.*)$")
_DELETING = re.compile(r"^\*deleting +(.*)$")
_SKIPPED = re.compile(r'^skipping non-regular file "(.*)"$')
_STAT = re.compile(r"^(Number of files|Number of created files|Number of deleted files|"
                   r"Number of regular files transferred|Total file size|Total transferred file size|"
                   r"Literal data): ([\d,]+)")
_IGNORED = re.compile(r"^(sent [\d,]+ bytes|total size is|Matched data|File list|Total bytes|"
                      r"created directory |building file list|done$)")
STAT_KEYS = {"Number of files": "entries", "Number of created files": "created",
             "Number of deleted files": "deleted", "Number of regular files transferred": "files_copied",
             "Total file size": "total_bytes", "Total transferred file size": "bytes_copied",
             "Literal data": "literal_bytes"}


def _number(text: str) -> int:
    return int(text.replace(",", ""))


class LogParser:
    """rsync's combined output (itemized changes, progress2 updates split by CR, stats) -> events and totals."""

    def __init__(self, emit: Optional[Callable[[dict], None]] = None, items: bool = True) -> None:
        """ITEMS False: itemized changes are counted, and only the latest goes out, in progress events."""
        self.emit = emit or (lambda event: None)
        self.items = items
        self.current = ""
        self._pending = b""
        self._last_progress = 0.0
        self._progress: Optional[dict] = None
        self.stats: dict[str, int] = {}
        self.new_files = 0
        self.changed_files = 0
        self.new_folders = 0
        self.deleted: list[str] = []
        self.skipped: list[str] = []
        self.messages: list[str] = []

    def feed(self, data: bytes) -> None:
        """A chunk of output. A line is cut at LINE_MAX bytes (what follows, up to its end, is dropped): the
        parser's memory stays small whatever it is fed."""
        data = self._pending + data
        pieces = re.split(rb"[\r\n]", data)
        self._pending = pieces.pop()[:LINE_MAX]
        for piece in pieces:
            self.line(piece[:LINE_MAX].decode("utf-8", errors="replace"))

    def close(self) -> None:
        if self._pending:
            self.line(self._pending.decode("utf-8", errors="replace"))
            self._pending = b""
        if self._progress is not None:
            self.emit(self._progress)
            self._progress = None

    def item(self, change: str, path: str) -> None:
        self.current = path
        if self.items:
            self.emit({"event": "item", "change": change, "path": path})

    def line(self, text: str) -> None:
        if not text.strip():
            return
        match = _PROGRESS.match(text)
        if match:
            self._progress = {"event": "progress", "current": self.current,
                              "bytes": _number(match.group(1)), "percent": int(match.group(2)),
                              "rate": match.group(3), "files": int(match.group(5) or 0),
                              "to_check": int(match.group(6) or 0), "total": int(match.group(7) or 0)}
            now = time.monotonic()
            if now - self._last_progress >= PROGRESS_EVERY:
                self._last_progress = now
                self.emit(self._progress)
                self._progress = None
            return
        match = _ITEM.match(text)
        if match:
            change, path = match.group(1), match.group(2)
            if change[1] == "f" and change[0] in "<>c":
                if "+++++++++" in change:
                    self.new_files += 1
                else:
                    self.changed_files += 1
            elif change[1] == "d" and "+++++++++" in change:
                self.new_folders += 1
            self.item(change, path)
            return
        match = _DELETING.match(text)
        if match:
            self.deleted.append(match.group(1))
            self.item("*deleting", match.group(1))
            return
        match = _SKIPPED.match(text)
        if match:
            self.skipped.append(match.group(1))
            self.emit({"event": "skipped", "path": match.group(1)})
            return
        match = _STAT.match(text)
        if match:
            self.stats[STAT_KEYS[match.group(1)]] = _number(match.group(2))
            regular = re.search(r"\breg: ([\d,]+)", text)
            if match.group(1) == "Number of files":
                self.stats["files_total"] = _number(regular.group(1)) if regular else 0
            return
        if _IGNORED.match(text) or text.startswith("Number of "):
            return
        self.messages.append(text.strip())
        del self.messages[:-40]
        self.emit({"event": "message", "text": text.strip()})
