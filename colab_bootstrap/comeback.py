"""A recycled runtime comes back: before the connect line, the cell restores the content root and the editor
servers' folders from Drive, when there is a backup and nothing of the user's would be overwritten.

The content root is restored only when it holds nothing but what Colab itself puts there (``COLAB_OWN``:
``sample_data``, the Drive mount ``drive`` and ``.config``); one user file there and it is left alone (the user
runs ``colabssh restore``). Each editor folder (``.vscode-server`` ...) with a backup in ``<Drive>/colabssh/home``
is restored when the home lacks it, from its archives (``sync.editor_archives``): into a staging folder, then
renamed into place, so a cut-off restore never looks like a server folder, and an existing folder is never
touched.

The content root's copy is the sync runner's own (``sync.plan.prepare`` with a restore Request,
``sync.worker.run_rsync``, recorded as a job: ``colabssh sync --attach`` replays it), and both restores run under
the runner's lock: a laptop's sync that comes meanwhile is refused by name, never run into the restore. Nothing
here stops the cell: a failure is one warning line with what to do, and the cell goes on to its connect line.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from .drive_layout import CONTENT_FOLDER
from .units import count, human_size

COLAB_OWN = ("sample_data", "drive", ".config")  # what a fresh Colab runtime's /content holds (with Drive mounted)
RESTORING = ".colabssh-restoring"  # in the content root while the cell restores it: a cut-off restore is ours
OURS = (".colabssh-tmp", RESTORING)  # rsync's temp folder (an empty one left by a killed run), the marker
PROGRESS_EVERY = 3.0  # seconds between progress lines in the notebook


class NotRestored(Exception):
    """A restore that failed: the warning line and what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def user_entries(content: Path, drive: Optional[Path] = None) -> list[str]:
    """The names in the content root that are the user's (not Colab's own, not the Drive folder, not ours)."""
    own = set(COLAB_OWN) | set(OURS)
    if drive is not None:
        rel = os.path.relpath(os.path.realpath(drive), os.path.realpath(content))
        if not rel.startswith(".."):
            own.add(rel.split(os.sep)[0])
    try:
        return sorted(name for name in os.listdir(content) if name not in own)
    except FileNotFoundError:
        return []


def has_backup(drive: Path) -> bool:
    """A non-empty backup of the content root on Drive (a folder with something in it besides rsync's temp)."""
    try:
        return any(entry.name not in OURS for entry in os.scandir(drive / CONTENT_FOLDER))
    except OSError:
        return False


def restore_at_start(content: Path, drive: Optional[Path], home: Path, state: Path, enabled: bool,
                     out: Callable[[str], None]) -> None:
    """The cell's comeback, between the GPU check and sshd: content root first, then the editor folders."""
    if not enabled:
        out("colabssh: restore from Drive skipped (restore is off: COLABSSH_RESTORE=0 or the cell's restore option)")
        return
    if drive is None:
        return  # no Drive folder: nothing to come back from (the Drive step said why)
    from .sync import editors

    content_wanted = has_backup(drive)
    folders = [name for name in editors.backed_up(drive) if not os.path.lexists(home / name)]
    if not content_wanted and not folders:
        return
    try:
        with runner_lock(state) as lock_fd:
            if content_wanted:
                guarded(lambda: restore_content(content, drive, state, lock_fd, out), out,
                        "once connected, run `colabssh restore`")
            for name in folders:
                guarded(lambda: restore_editor(name, home, drive, lock_fd, out), out,  # noqa: B023 (run at once)
                        "the editor downloads its server again at the next connection")
    except NotRestored as exc:
        warn(exc, out)
    except Exception as exc:  # noqa: BLE001  (the lock's own file failed: the state folder)
        warn(NotRestored(f"nothing restored from Drive: {type(exc).__name__}: {exc}",
                         "once connected, run `colabssh restore`"), out)


def warn(exc: NotRestored, out: Callable[[str], None]) -> None:
    out(f"colabssh: warning: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))


def guarded(step: Callable[[], None], out: Callable[[str], None], hint: str) -> None:
    """One restore step; its failure is one warning line (a restore never stops the cell, nor the next step)."""
    try:
        step()
    except NotRestored as exc:
        warn(exc, out)
    except Exception as exc:  # noqa: BLE001
        warn(NotRestored(f"the restore from Drive failed: {type(exc).__name__}: {exc}", hint), out)


class runner_lock:
    """The sync runner's lock for the restore's length (a laptop's sync is refused meanwhile, by name)."""

    def __init__(self, state: Path) -> None:
        from .sync.jobs import Jobs

        self.jobs = Jobs(state)
        self.fd: Optional[int] = None

    def __enter__(self) -> int:
        from .sync.protocol import SyncRefused

        about = {"role": "cell", "origin": "the cell", "mode": "restore", "token": ""}
        try:
            self.fd = self.jobs.acquire(about, lambda text: None)
        except SyncRefused as exc:
            raise NotRestored(f"nothing restored from Drive: {exc.message}",
                              "once connected, run `colabssh restore`") from None
        return self.fd

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            self.jobs.release(self.fd)


def restore_content(content: Path, drive: Path, state: Path, lock_fd: int, out: Callable[[str], None]) -> None:
    """Bring the content root's backup back with the runner's plan and rsync, a progress line every few seconds."""
    from .sync.follow import follow
    from .sync.jobs import Jobs
    from .sync.plan import ensure_rsync, prepare
    from .sync.protocol import EXIT_SIGNAL, SyncRefused, advice_for
    from .sync.request import Request
    from .sync.worker import finish, note_in_log, run_rsync

    marker = content / RESTORING
    mine = user_entries(content, drive)
    if mine and os.path.isfile(marker) and not os.path.islink(marker):
        out(f"colabssh: {content} holds a restore a stopped run of the cell began: finishing it")
        mine = []
    if mine:
        shown = ", ".join(mine[:3]) + (" ..." if len(mine) > 3 else "")
        out(f"colabssh: {content} holds files already ({shown}): not restored; `colabssh restore` brings the "
            "backup back")
        return
    try:
        plan = prepare(Request(mode="restore", content=content, drive=drive), ensure_rsync(out))
        job, spec = Jobs(state).new_job(plan, "cell")  # a job: `colabssh sync --attach` replays it
    except SyncRefused as exc:
        raise NotRestored(f"{content} not restored from Drive: {exc.message}",
                          exc.hint or "once connected, run `colabssh restore`") from None
    try:
        marker.touch()  # until the copy is whole: a kill -9 meanwhile leaves a restore to finish, not "user files"
    except OSError as exc:
        raise NotRestored(f"{content} not restored from Drive: cannot write in it ({exc.strerror or exc})",
                          "check the content root's permissions and free space") from None
    total_files, total_bytes = (plan.scan.files, plan.scan.bytes) if plan.scan is not None else (0, 0)
    out(f"colabssh: restoring {content} from {plan.request.source_root}: {count(total_files, 'file')}, "
        f"{human_size(total_bytes)}")

    def copy() -> None:  # the worker's part, in a thread of the kernel (a fork of a notebook's kernel is unsafe)
        code = 1
        try:
            code = run_rsync(job, spec, lock_fd)
        except Exception as exc:  # noqa: BLE001  (recorded in the job; the follower reports it)
            note_in_log(job, f"the restore failed: {exc}")
        finish(job, code if code >= 0 else EXIT_SIGNAL)

    started = time.monotonic()
    last = [started]

    def show(event: dict) -> None:
        now = time.monotonic()
        if event.get("event") == "progress" and now - last[0] >= PROGRESS_EVERY:
            last[0] = now
            out(f"colabssh: restoring: {event.get('files', 0):,} of {count(total_files, 'file')}, "
                f"{human_size(int(event.get('bytes', 0)))} of {human_size(total_bytes)} "
                f"({now - started:.0f} s)")

    worker = threading.Thread(target=copy, name="colabssh-restore", daemon=True)
    worker.start()
    try:
        code = follow(job, Jobs(state), show)
    finally:
        worker.join()  # the lock is let go only once rsync has ended, whatever became of the follower
    seconds = time.monotonic() - started
    if code:
        raise NotRestored(f"{content} was restored only in part (rsync exit {code}: {advice_for(code)})",
                          "once connected, run `colabssh restore` to bring the rest back")
    marker.unlink(missing_ok=True)
    out(f"colabssh: restored {content} from Drive: {count(total_files, 'file')}, {human_size(total_bytes)} in "
        f"{seconds:.1f} s")


def restore_editor(name: str, home: Path, drive: Path, lock_fd: int, out: Callable[[str], None]) -> None:
    """One editor folder from its archives on Drive into the home (missing there: the caller checked), extracted
    into the staging folder and renamed into place once whole; a progress line every few seconds."""
    from .sync import editor_archives, editors

    started = time.monotonic()
    last = [started]
    what = editors.label([name])
    staging = home / editors.STAGING
    shutil.rmtree(staging, ignore_errors=True)  # what a cut-off restore left: ours by name

    def show(done: int, total: int, done_bytes: int, total_bytes: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY and done < total:
            last[0] = now
            out(f"colabssh: restoring {what}: {done:,} of {count(total, 'archive')}, {human_size(done_bytes)} of "
                f"{human_size(total_bytes)} ({now - started:.0f} s)")

    try:
        files, size = editor_archives.restore_folder(
            editors.store_of(drive) / name, staging / name, editors.tar_path(),
            lambda argv, data: editor_archives.run_tar_plainly(argv, data, lock_fd), show)
        if os.path.lexists(home / name):  # made meanwhile (an editor connected early): never overwritten
            out(f"colabssh: {home / name} appeared during the restore: kept as it is")
            return
        os.rename(staging / name, home / name)
    except editor_archives.Damaged as exc:
        raise NotRestored(f"{home / name} not restored from Drive: {exc}",
                          "the editor downloads its server again at the next connection") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    out(f"colabssh: restored {what} ({home / name}) from Drive: {count(files, 'file')}, "
        f"{human_size(size)} in {time.monotonic() - started:.1f} s")
