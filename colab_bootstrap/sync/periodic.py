"""The cell's own backup to Drive on a timer (``sync_every``), in the notebook's kernel."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from ..settings import home_folder
from ..units import count, human_size
from .editors import label
from .files import append_bytes, os_failure, read_json, read_small, write_text
from .follow import parse_log, reader_for, summary
from .jobs import Jobs
from .plan import ensure_rsync, prepare
from .protocol import EXIT_SIGNAL, SyncRefused
from .request import Request
from .worker import finish, note_in_log, run_rsync


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
        plan = prepare(request, ensure_rsync(lambda text: None))
        job, spec = jobs.new_job(plan, origin)
        code = run_rsync(job, spec, lock_fd)
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
    parser = reader_for(spec)
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
    text = (f"{count(report['files_copied'], 'file')} copied ({human_size(report['bytes_copied'])}), "
            f"{report['deleted']:,} moved to the trash, into {report['dest']} in {report['seconds']:.1f} s")
    if report["exit"]:
        text += f"; rsync exit {report['exit']}: {report['advice']}"
    elif report.get("drive_cache"):
        text += " (in Drive's local cache; Google Drive uploads it in the background)"
    editors = report.get("editors")
    if editors and editors.get("exit") is not None:
        text += (f"; {label(editors['names'])}: {count(editors['files'], 'file')} kept on Drive"
                 + (f" (exit {editors['exit']})" if editors["exit"] else ""))
    for note in report.get("notes") or []:
        text += f" (note: {note})"
    return text


def start_periodic(content: Path | str, drive: Optional[Path | str], state: Path | str, every: int,
                   say: Callable[[str], None] = print, home: Optional[Path | str] = None) -> Optional[threading.Thread]:
    """The cell's option: back the content root up every EVERY seconds from the runtime itself (0: off).

    A daemon thread, which runs while ``STATE/sync/periodic.id`` holds its token: a later call (a re-run of the cell)
    takes over and the earlier thread ends at its next wake; a call with EVERY <= 0 or no Drive removes the file, so
    the earlier thread ends and none starts (the cell's ``colabssh_stop()`` removes it too). Each run also keeps
    the editor folders of HOME (default: ``COLABSSH_HOME``, else the login user's home) on Drive (``editors``).
    Each run is logged to ``STATE/sync/periodic.log``; the notebook hears of the first backup and of failures.
    Neither file is ever opened unless it is a regular file (a FIFO there would block the thread for good).
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
    request = Request(mode="backup", content=Path(content), drive=Path(drive),
                      home=home_folder(os.environ) if home is None else Path(home))
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
