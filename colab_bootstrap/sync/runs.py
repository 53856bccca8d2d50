"""The laptop's commands on the runtime: ``start`` (lock, check, fork the worker, follow), ``attach``, ``cancel``."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from .config import POLL_SECONDS
from .files import os_failure, read_json
from .follow import follow, job_spec, parse_log, reader_for, summary
from .jobs import Jobs, holder_alive, worker_pid
from .plan import ensure_rsync, prepare
from .protocol import EXIT_SIGNAL, SyncRefused
from .request import Request
from .worker import finish, note_in_log, spawn_worker


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
            with sigterm_blocked():  # a stop waits until the job is made and named here: it is then recorded in it
                job, spec = jobs.new_job(plan, origin, token)
            counted = {"files": plan.scan.files, "bytes": plan.scan.bytes} if plan.scan is not None else {}
            say({"event": "start", "job": job.name, "mode": request.mode, "source": str(plan.request.source_root),
                 "dest": str(plan.request.dest_root), "dry_run": request.dry_run, **counted})
            with sigterm_blocked():
                worker, done_fd = spawn_worker(job, spec, lock_fd, jobs)
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
                                    "no_job"), emit)
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
        try:
            parser = reader_for(job_spec(job, jobs))
        except SyncRefused:
            parser = reader_for({})
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
