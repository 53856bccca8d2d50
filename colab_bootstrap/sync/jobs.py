"""The lock (``STATE/sync/lock``, flock, its holder recorded) and the jobs (``STATE/sync/jobs/<id>/``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from .config import POLL_SECONDS
from .files import UnsafeFile, _not_regular, open_regular, os_failure, read_json, read_small, write_json, write_text
from .plan import Plan, utc_stamp
from .procs import ago, boot_id, clock, command_name, holders_of, process_start, process_started_at, signal_process
from .protocol import SyncRefused

KEEP_JOBS = 10
LOCK_RECORD_MAX = 4096  # the lock's record of its holder
TAKEOVER_SECONDS = 3.0  # how long a stale lock's leftovers get to let go (SIGTERM, then SIGKILL)
RECORD_WAIT = 0.5  # how long a held lock may go without a record of its holder (it writes one at once)
JOB_NAME = re.compile(r"\d{4}-\d\d-\d\dT\d{6}Z-\d+-\d{6}")


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
                              "the sync again", "bad_state") from None

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
                    "if that is a leftover, stop it on the runtime (kill PID), then run the sync again", "locked")
            time.sleep(POLL_SECONDS)
        return stopped

    def busy(self, record: Optional[dict]) -> SyncRefused:
        if record is not None:
            detail = f": {describe_holder(record)}"
        else:
            holders = [pid for pid in holders_of(self.lock) if pid != os.getpid()]
            detail = f" (its lock is held by {', '.join(describe_process(pid) for pid in holders)})" if holders else ""
        return SyncRefused(f"a sync is already running on this runtime{detail}",
                           "wait for it to finish, or follow it with `colabssh sync --attach`", "locked")

    # ----- jobs
    def new_job(self, plan: Plan, origin: str, token: str = "") -> tuple[Path, dict]:
        """A new job folder for PLAN, its job.json written; returns the folder and that spec (the worker runs it
        from memory)."""
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
                "editors": plan.editors.as_spec() if plan.editors is not None else None,
                "scan": {} if plan.scan is None else {**asdict(plan.scan),
                                                      "newer_in_dest": plan.scan.newer_in_dest[:100],
                                                      "newer_count": len(plan.scan.newer_in_dest)}}
        write_json(job / "job.json", spec)
        os.close(open_regular(job / "log", os.O_WRONLY | os.O_CREAT))
        write_text(self.current, job.name + "\n")
        self.prune(keep=job)
        return job, spec

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


def worker_pid(job: Path) -> Optional[int]:
    """The job's worker while it lives: the pid it recorded, still a session leader running this runner
    (a reused pid fails one of the two)."""
    try:
        pid = int(read_small(job / "worker.pid", 64).strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    alive = fields[0] != "Z" and int(fields[3]) == pid and b"colab_bootstrap.sync" in cmdline
    return pid if alive else None
