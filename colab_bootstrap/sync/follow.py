"""Following a job: its log turned into JSON events until the worker has released the lock and written its result."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from ..units import human_size
from .config import POLL_SECONDS, STATE_FILE_MAX
from .files import UnsafeFile, open_regular, os_failure, read_json, read_small
from .jobs import Jobs, worker_pid
from .output import OUT_FORMAT, OutputReader
from .protocol import EXIT_LOST, SyncRefused, SyncResult, advice_for

LOG_MAX = 1 << 30  # bytes of a job's log that are followed
CHUNK = 1 << 20  # bytes read at a time


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
                          f"remove it (rm -r -- {job}), then run the sync again", "bad_state")
    return data


def summary(job: Path, parser: OutputReader, result: Optional[dict], spec: Optional[dict] = None) -> dict:
    spec = (read_json(job / "job.json") or {}) if spec is None else spec
    code = EXIT_LOST if result is None else int(result.get("exit", 1))
    duration = (result or {}).get("ended", time.time()) - spec.get("started", time.time())
    return SyncResult(
        job=job.name, exit=code, mode=spec.get("mode"), origin=spec.get("origin"),
        dry_run=spec.get("dry_run", False), source=spec.get("source"), dest=spec.get("dest"),
        paths=spec.get("paths", ["."]), trash=spec.get("trash") if parser.deleted_count or parser.changed_files
        else None, drive_cache=spec.get("drive_cache", False), cancelled=bool((result or {}).get("cancelled")),
        new_files=parser.new_files, changed_files=parser.changed_files, new_folders=parser.new_folders,
        deleted=parser.deleted_count, files_copied=parser.stats.get("files_copied", 0),
        bytes_copied=parser.stats.get("bytes_copied", 0), total_bytes=parser.stats.get("total_bytes", 0),
        files_total=parser.stats.get("files_total", 0),
        entries=parser.stats.get("entries", 0), skipped=parser.skipped[:100],
        kept_newer=spec.get("scan", {}).get("newer_in_dest", [])[:100],
        kept_newer_count=spec.get("scan", {}).get("newer_count", 0), messages=parser.messages[-20:],
        seconds=round(max(duration, 0.0), 3), ended=(result or {}).get("ended"),
        advice=advice_for(code) if code != EXIT_LOST else
        "the sync's worker on the runtime was killed before it could record a result; run the sync again",
        lost=result is None, editors=editors_report(job, spec),
    ).to_event()


def editors_report(job: Path, spec: dict) -> Optional[dict]:
    """The counts of a full backup's editor step (``editor_archives``), from editors.json; None when the job had
    none. ``exit`` is None when it never ran (the content's rsync failed first)."""
    step = spec.get("editors")
    if not isinstance(step, dict):
        return None
    done = read_json(job / "editors.json") or {}

    def number(key: str) -> int:
        value = done.get(key)
        return value if isinstance(value, int) else 0

    messages = done.get("messages")
    return {"names": list(step.get("names") or []), "exit": number("exit") if "exit" in done else None,
            "files": number("files"), "bytes": number("bytes"), "files_copied": number("files_copied"),
            "bytes_copied": number("bytes_copied"), "deleted": number("deleted"),
            "messages": [str(m) for m in messages[-5:]] if isinstance(messages, list) else []}


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

    def __init__(self, fd: int, parser: OutputReader) -> None:
        self.fd, self.parser, self.fed = fd, parser, 0

    def step(self) -> bool:
        chunk = os.read(self.fd, CHUNK)
        if chunk and self.fed < LOG_MAX:
            self.parser.feed(chunk)
            self.fed += len(chunk)
        return bool(chunk)

    def drain(self) -> None:
        while self.step():
            pass


def reader_for(spec: dict, emit: Optional[Callable[[dict], None]] = None) -> OutputReader:
    """The reader for a job's log, as its spec (job.json) started it: a dry run lists every change; a backup
    warns about many small files; the item lines carry their size when its rsync was given OUT_FORMAT."""
    argv = spec.get("argv") or []
    return OutputReader(emit, items=bool(spec.get("dry_run")), sized=f"--out-format={OUT_FORMAT}" in argv,
                        warn_small=spec.get("mode") == "backup")


def parse_log(job: Path, parser: OutputReader) -> None:
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
    parser = reader_for(spec, emit)
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
