"""The worker: forked into a session of its own, it holds the lock and runs rsync with output to the job's log."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from .config import POLL_SECONDS
from .files import UnsafeFile, append_bytes, file_kind, open_regular, write_json, write_text
from .jobs import Jobs
from .protocol import EXIT_SIGNAL


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


def run_rsync(job: Path, spec: dict, lock_fd: Optional[int],
              on_start: Callable[[subprocess.Popen], None] = lambda p: None) -> int:
    """Run the job's rsync (SPEC: its job.json, as written) with its output in the job's log; rsync inherits the
    lock. Returns rsync's exit code."""
    tmp = TempFolder(Path(spec["tmp_dir"]))
    if not spec.get("dry_run"):
        Path(spec["dest"]).mkdir(parents=True, exist_ok=True)
        tmp.open()
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
    if not spec.get("dry_run"):
        tmp.close(unchanged=code == 0 and copied_nothing(job))
    if spec.get("editors") and code in PARTIAL_OK:
        editors_code = run_editors(job, spec, lock_fd, on_start)
        code = code or (0 if editors_code == VANISHED else editors_code)
    return code


def remove_if_empty(tmp_dir: Path) -> bool:
    """rsync's temp folder, once its run has ended: removed when empty (nothing of ours left in the backup or the
    content root), kept when not. Its run still holds the sync lock, so no other sync of this runtime uses it; a
    folder that holds something (a file another runtime's sync to the same Drive folder is writing, say) is left
    alone: rmdir removes only an empty folder. Returns whether it removed it."""
    try:
        tmp_dir.rmdir()
    except OSError:
        return False
    return True


class TempFolder:
    """The temp folder of one run (rsync's --temp-dir, the editor step's tar files): emptied before (``open``),
    removed when empty after (``close``). Made and removed, it would change the time of the folder it sits in on
    every run, and a no-change sync must write nothing: when the run changed nothing, that folder gets its times
    back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.parent_times: Optional[tuple[int, int]] = None

    def open(self) -> None:
        if not os.path.lexists(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            info = os.stat(self.path.parent)
            self.parent_times = (info.st_atime_ns, info.st_mtime_ns)
        clear_tmp(self.path)

    def close(self, unchanged: bool) -> None:
        if remove_if_empty(self.path) and unchanged and self.parent_times is not None:
            try:
                os.utime(self.path.parent, ns=self.parent_times)
            except OSError:
                pass  # a time not given back costs nothing but that


STATS_TAIL = 1 << 14  # bytes at the end of a job's log that hold rsync's --stats
_NOTHING_DONE = (b"Number of created files: 0\n", b"Number of deleted files: 0\n",
                 b"Number of regular files transferred: 0\n")


def copied_nothing(job: Path) -> bool:
    """Whether the job's rsync created, deleted and transferred nothing (its --stats, at the end of its log)."""
    try:
        log = open_regular(job / "log")
    except OSError:
        return False
    try:
        tail = os.pread(log, STATS_TAIL, max(os.fstat(log).st_size - STATS_TAIL, 0))
    except OSError:
        return False
    finally:
        os.close(log)
    return all(line in tail for line in _NOTHING_DONE)


PARTIAL_OK = (0, 23, 24)  # rsync's codes after which the rest of a job still runs (all of it, or all it could)
VANISHED = 24  # in an editor folder, a running server's churn: a unit changed as it was read (its summary says so)


def run_editors(job: Path, spec: dict, lock_fd: Optional[int],
                on_start: Callable[[subprocess.Popen], None] = lambda p: None) -> int:
    """A full backup's editor step: the home's editor folders archived on Drive (``editor_archives``), each
    changed unit by one tar that inherits the lock (a cancel ends it like rsync); tar's own lines go to the job's
    editors.log, and the step's counts and exit code to editors.json (the summary's ``editors``)."""
    from .editor_archives import back_up, last_line

    step = spec["editors"]
    dry_run = bool(spec.get("dry_run"))
    tmp = TempFolder(Path(step["tmp_dir"]))
    if not dry_run:
        Path(step["store"]).mkdir(parents=True, exist_ok=True)
        tmp.open()
    log = open_regular(job / "editors.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def run_tar(argv: list[str], data: Optional[bytes]) -> tuple[int, str]:
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   env={**os.environ, "LC_ALL": "C"},
                                   pass_fds=(lock_fd,) if lock_fd is not None else (), start_new_session=True)
        on_start(process)
        output, _ = process.communicate(data)
        end_group(process.pid)
        os.write(log, output)
        return process.returncode, last_line(output)

    try:
        report = back_up(step, run_tar, dry_run)
    finally:
        os.close(log)
    if not dry_run:  # nothing of ours left beside the archives
        tmp.close(unchanged=not (report.exit or report.files_copied or report.deleted))
    write_json(job / "editors.json", report.as_dict())
    return report.exit


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


def worker_main(job: Path, spec: dict, lock_fd: int, jobs: Jobs) -> int:
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
        code = run_rsync(job, spec, lock_fd, started)
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


def spawn_worker(job: Path, spec: dict, lock_fd: int, jobs: Jobs) -> tuple[int, int]:
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
            code = worker_main(job, spec, lock_fd, jobs)
        except BaseException:  # noqa: BLE001  (into worker.log; the follower reports a lost run)
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(done_write)
    os.close(log)
    return pid, done_read
