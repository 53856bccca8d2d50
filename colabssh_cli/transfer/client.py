"""The laptop side of `colabssh sync` and `restore` (no typer, no rich: commands/ renders).

``sync`` and ``restore`` run ON the runtime, where both the content root and Drive live: one remote command runs the
runner, ``colab_bootstrap.sync.main``, with the runtime's python (``shipping.run_module``: the code cached on the
runtime, or sent when it is not there). This side imports only the portable ``colab_bootstrap.sync.protocol`` (the
runner needs POSIX: fcntl, fork). That one command takes the lock, checks, starts rsync detached and follows its
log; each line it prints is a JSON event (progress, items, warnings, then the result), handed here to ``on_event``
as it arrives. A Ctrl-C stops the run on the runtime too (a dropped link does not: ``attach`` follows a run again):
the laptop names its run with a random token, and on Ctrl-C a second command (``cancel --token``) stops that run,
whatever phase it is in, waits for it to end and says what became of it; within two seconds the command ends (exit
130) with one line saying what state the backup is in and what to run (``SyncInterrupted``).

``pull`` and ``push`` are in copy.py.

``run_every`` is ``sync --every``: a run now and then on a period, until Ctrl-C.
"""

from __future__ import annotations

import json
import posixpath
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from colab_bootstrap.sync import protocol as sync_protocol

from ..errors import BAD_INPUT, FAILURE, INTERRUPTED, MISSING_TOOL, UNREACHABLE, ColabsshError
from ..remote.runner import Remote
from ..remote.shipping import run_module
from ..session import Session, Transport

Event = dict[str, Any]
EventSink = Callable[[Event], None]

DEFAULT_FOLDER = sync_protocol.DEFAULT_FOLDER
CTRL_C_SECONDS = 2.0  # a Ctrl-C ends the command within this, the state of the backup said
STOP_WAIT = 0.7  # how long the runtime waits for the stopped run to end before it answers
STOP_MARGIN = 0.7  # of CTRL_C_SECONDS, for what comes before the stop (ssh ending: 0.25 s on a dead link) and after
printable = sync_protocol.printable
SyncOptions = sync_protocol.SyncOptions  # what a run is asked to do: one dataclass for both sides
SyncResult = sync_protocol.SyncResult  # how a run ended, as the runner reports it
RUNNER_MODULE = "colab_bootstrap.sync.main"  # run on the runtime through colabssh_cli.remote.shipping

class SyncInterrupted(ColabsshError):
    """Ctrl-C: the command ends with exit 130 and one line saying what state the backup is in, and what to run."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message, hint, INTERRUPTED)


@dataclass
class SyncOutcome:
    report: Event  # the runner's "result" event
    changes: list[Event] = field(default_factory=list)  # itemized changes (what a dry run would do)
    warnings: list[Event] = field(default_factory=list)

    @property
    def result(self) -> sync_protocol.SyncResult:
        """The report, typed."""
        return sync_protocol.SyncResult.from_event(self.report)

    @property
    def exit_code(self) -> int:
        code = int(self.result.exit)
        return FAILURE if code == sync_protocol.EXIT_LOST else code

    def as_json(self) -> dict[str, Any]:
        document = {k: v for k, v in self.report.items() if k != "event"}
        document["warnings"] = [{"message": w.get("message", ""), "hint": w.get("hint", "")} for w in self.warnings]
        if self.result.dry_run:
            document["changes"] = [{"change": c["change"], "path": c["path"]} for c in self.changes]
        return document


def run_runner(remote: Remote, args: Sequence[str], *, on_stdout: Optional[Callable[[str], None]] = None,
               on_stderr: Optional[Callable[[str], None]] = None, timeout: Optional[float] = None) -> int:
    """Run the sync runner on the runtime with ARGS (colab_bootstrap's code, cached there or shipped)."""
    return run_module(remote, RUNNER_MODULE, args, on_stdout=on_stdout, on_stderr=on_stderr, timeout=timeout)


def remote_relative(path: str, content: str, what: str = "PATH") -> str:
    """A PATH argument as the runner wants it: relative to the content root (an absolute one inside it is fine)."""
    text = path.strip()
    if text.startswith("/"):
        root = content.rstrip("/") or "/"
        if text != root and not text.startswith(root + "/"):
            raise ColabsshError(f"{what} {path!r} is outside the content root {content}",
                                "give paths relative to the content root", BAD_INPUT)
        text = posixpath.relpath(text, root)
    try:
        return sync_protocol.clean_relative(text, what)
    except sync_protocol.SyncRefused as exc:
        raise ColabsshError(exc.message, exc.hint, BAD_INPUT) from None


def start_args(remote: Remote, options: SyncOptions, token: str = "") -> list[str]:
    session = remote.session
    try:  # the runner's own check, before anything is sent (PATHs below: relative to the content root first)
        folder, _ = sync_protocol.check_options(options.mode, options.folder, options.excludes)
    except sync_protocol.SyncRefused as exc:
        raise ColabsshError(exc.message, exc.hint, BAD_INPUT) from None
    args = ["start", "--mode", options.mode, "--content", session.content, "--folder", folder]
    if token:
        args += ["--token", token]
    if session.drive:
        args += ["--drive", session.drive]
    return args + options.runner_args() + ["--", *[remote_relative(p, session.content) for p in options.paths]]


class _EventReader:
    """Collects the runner's JSON events and hands each one on."""

    def __init__(self, on_event: EventSink) -> None:
        self.on_event = on_event
        self.error: Optional[Event] = None
        self.started: Optional[Event] = None
        self.result: Optional[Event] = None
        self.changes: list[Event] = []
        self.warnings: list[Event] = []
        self.stderr: list[str] = []

    def stdout_line(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        kind = event.get("event")
        if kind == "error":
            self.error = event
        elif kind == "result":
            self.result = event
        elif kind == "start":
            self.started = event
        elif kind == "item":
            self.changes.append(event)
        elif kind == "warning":
            self.warnings.append(event)
        self.on_event(event)

    def stderr_line(self, line: str) -> None:
        self.stderr.append(line)
        del self.stderr[:-20]

    def outcome(self, alias: str, returncode: int) -> SyncOutcome:
        if self.error is not None:
            raise ColabsshError(printable(self.error.get("message", "the sync was refused")),
                                printable(self.error.get("hint", "")),
                                sync_protocol.laptop_exit(str(self.error.get("kind"))))
        if self.result is None:
            last = printable(next((line for line in reversed(self.stderr) if line.strip()),
                                  f"exit code {returncode}"))
            raise ColabsshError(f"{alias}: the sync runner failed on the runtime: {last}",
                                "is the runtime's python 3.8 or newer? Re-run the cell, then try again", FAILURE)
        return SyncOutcome(self.result, self.changes, self.warnings)


def noop(event: Event) -> None:
    pass


def stop_run(remote: Remote, token: str, timeout: float) -> Optional[Event]:
    """Stop the run the laptop started with TOKEN (``cancel --token``), and hear what became of it: the runner's
    "cancelled" event (state: stopped, finished, not_found, lost, running), or None without an answer in time."""
    args = ["cancel", "--token", token, "--wait", f"{min(STOP_WAIT, timeout / 2):.2f}"]
    lines: list[str] = []
    try:
        run_runner(remote, args, on_stdout=lines.append, timeout=max(timeout, 0.1))
    except (ColabsshError, KeyboardInterrupt):  # no answer in time, or a second Ctrl-C: not waiting any longer
        return None
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "cancelled":
            return event
    return None


def _words(options: SyncOptions) -> tuple[str, str, str]:
    """What a message calls the run, what it changes, and the command that runs it again."""
    if options.mode == "restore":
        return "restore", "the content root", "colabssh restore"
    return "sync", "the backup on Drive", "colabssh sync"


def _when(report: sync_protocol.SyncResult) -> str:
    ended = report.ended
    return time.strftime(" as of %H:%M:%S", time.localtime(ended)) if isinstance(ended, (int, float)) else ""


NOTHING_LEFT = "stopped on the runtime too (nothing of it is left running there)"


def interrupted(options: SyncOptions, answer: Optional[Event], report: Optional[Event] = None) -> SyncInterrupted:
    """Ctrl-C during a sync or restore: one line on the state it left, from the result the laptop already had
    (REPORT) or the runtime's ANSWER to the stop. A Ctrl-C means stop: the run is stopped on the runtime (a dropped
    link is what leaves one going there, for `--attach`), and the line says so only once the runtime confirmed it."""
    run, target, again = _words(options)
    document = report if report is not None else (answer or {}).get("report")
    result = sync_protocol.SyncResult.from_event(document) if isinstance(document, dict) else None
    state = "finished" if result is not None and answer is None else str((answer or {}).get("state", "unknown"))
    if options.dry_run and state != "unknown":
        return SyncInterrupted(f"{run} interrupted: the dry run was stopped; nothing was changed")
    if state in ("stopped", "finished") and result is not None and not result.cancelled:
        if int(result.exit) == 0:
            return SyncInterrupted(f"interrupted, but the {run} had already finished: {target} is complete"
                                   f"{_when(result)}")
        return SyncInterrupted(f"interrupted; the {run} had already ended with exit code {result.exit}: "
                               f"{printable(result.advice)}", f"run `{again}` again")
    touched = result is not None and any((result.new_files, result.changed_files, result.new_folders,
                                          result.deleted))
    if state == "not_found" or (state == "stopped" and not touched):
        return SyncInterrupted(f"{run} interrupted before anything was copied, and {NOTHING_LEFT}: {target} is "
                               "unchanged", f"run `{again}` to start it again")
    if state == "lost":
        return SyncInterrupted(f"{run} interrupted: it ended on the runtime without recording a result (nothing of "
                               f"it is left running there); {target} may be partial", f"run `{again}` again to "
                               "finish it (it copies only what is missing)")
    if state == "stopped":
        return SyncInterrupted(f"{run} interrupted, and {NOTHING_LEFT}: {target} is partial (what was copied is "
                               "kept, every file whole: its old version or its new one)",
                               f"run `{again}` again to finish it (it copies only what is missing)")
    return SyncInterrupted(f"{run} interrupted: could not confirm within {CTRL_C_SECONDS:.0f} s that it stopped on "
                           f"the runtime; it may still be running there, and {target} may be partial",
                           f"see it with `colabssh sync --attach` (Ctrl-C there only stops following), then run "
                           f"`{again}` again")


def run_sync(remote: Remote, options: SyncOptions, on_event: EventSink = noop) -> SyncOutcome:
    """One sync or restore on the runtime, followed to its end. A Ctrl-C stops it there too (within
    CTRL_C_SECONDS) and raises SyncInterrupted, which says what state the backup is in."""
    reader = _EventReader(on_event)
    token = secrets.token_hex(8)
    try:
        code = run_runner(remote, start_args(remote, options, token), on_stdout=reader.stdout_line,
                          on_stderr=reader.stderr_line)
    except KeyboardInterrupt:
        begun = time.monotonic()
        if reader.result is not None:
            raise interrupted(options, None, reader.result) from None
        if reader.error is not None:
            raise interrupted(options, {"state": "not_found"}) from None
        answer = stop_run(remote, token, CTRL_C_SECONDS - STOP_MARGIN - (time.monotonic() - begun))
        raise interrupted(options, answer) from None
    except ColabsshError:
        if reader.started is None or reader.result is not None:
            raise
        raise dropped(remote, options) from None
    if (code < 0 or code == 255) and reader.started is not None and reader.result is None:
        raise dropped(remote, options)  # ssh was killed, or lost the link: the runner itself did not end
    return reader.outcome(remote.alias, code)


def dropped(remote: Remote, options: SyncOptions) -> ColabsshError:
    """The link broke after the run had started: the run is detached on the runtime and goes on."""
    return ColabsshError(f"{remote.alias}: the connection to the runtime dropped during the {_words(options)[0]}; it "
                         "goes on there", "follow it with `colabssh sync --attach` (it says when it ends and how)",
                         UNREACHABLE)


def attach(remote: Remote, on_event: EventSink = noop) -> SyncOutcome:
    """Follow the runtime's running sync (or replay its latest) to the end; Ctrl-C only stops following."""
    reader = _EventReader(on_event)
    try:
        code = run_runner(remote, ["attach"], on_stdout=reader.stdout_line, on_stderr=reader.stderr_line)
    except KeyboardInterrupt:
        raise SyncInterrupted("interrupted: stopped following; the sync goes on on the runtime",
                              "`colabssh sync --attach` follows it again") from None
    return reader.outcome(remote.alias, code)


def was_interrupted(report: sync_protocol.SyncResult) -> bool:
    """The run was stopped part-way (a Ctrl-C's cancel, a kill of its rsync): its counts say what rsync had begun,
    not what it finished, so no summary is shown for it; ``check`` says what state it left."""
    return not report.lost and (report.cancelled or int(report.exit) in sync_protocol.STOPPED_EXITS)


def interrupted_run(report: sync_protocol.SyncResult, attached: bool = False) -> ColabsshError:
    """One line for a run that was stopped part-way: what state it left, what to run. ATTACHED: the run was one
    that `sync --attach` followed or replayed (stopped by another command, or by a Ctrl-C before)."""
    run, target, again = _words(SyncOptions(report.mode or "backup"))
    which = f"the last {run} on the runtime" if attached else f"the {run}"
    touched = any((report.new_files, report.changed_files, report.new_folders, report.deleted))
    if report.dry_run:
        return ColabsshError(f"{which} was interrupted: it was a dry run; nothing was changed",
                             f"run `{again} --dry-run` again", int(report.exit) or FAILURE)
    if not touched:
        return ColabsshError(f"{which} was interrupted before it copied anything: {target} is unchanged",
                             f"run `{again}` to start it again", int(report.exit) or FAILURE)
    return ColabsshError(f"{which} was interrupted: {target} is partial (every file in it is whole: its old "
                         "version or its new one)",
                         f"run `{again}` again to finish it (it copies only what is missing)",
                         int(report.exit) or FAILURE)


def check(outcome: SyncOutcome, attached: bool = False) -> None:
    """Raise the run's failure (after the summary was shown): rsync's exit code and its advice; a run stopped
    part-way says what state it left (``interrupted_run``)."""
    report = outcome.result
    if was_interrupted(report):
        raise interrupted_run(report, attached)
    if report.lost:
        raise ColabsshError("the sync on the runtime stopped without recording a result (its worker was killed)",
                            str(report.advice), FAILURE)
    code = outcome.exit_code
    if code:
        what = "restore" if report.mode == "restore" else "sync"
        raise ColabsshError(f"the {what} ended with rsync exit code {code}", str(report.advice), code)


def run_every(every: float, run: Callable[[], SyncOutcome], show: Callable[[SyncOutcome], None],
              on_failure: Callable[[ColabsshError], None], on_wait: Callable[[float], None],
              wait: Callable[[float], None] = time.sleep) -> None:
    """`sync --every`: RUN now and then every EVERY seconds until Ctrl-C; SHOW each outcome, then check it.

    A failed run goes to ON_FAILURE and the loop goes on, except for bad input and a missing tool, which no later
    run can fix: those are raised. Ctrl-C during a run is raised as it is (the run stopped it on the runtime too,
    and says in what state: SyncInterrupted, or a bare KeyboardInterrupt);
    Ctrl-C while waiting ends the loop: it returns when the last run succeeded, and raises that run's failure
    (and so its exit code) when it did not."""
    last: Optional[ColabsshError] = None
    while True:
        try:
            outcome = run()
            show(outcome)
            check(outcome)
            last = None
        except ColabsshError as exc:
            if exc.exit_code in (BAD_INPUT, MISSING_TOOL, INTERRUPTED):
                raise
            last = exc
            on_failure(exc)
        try:
            on_wait(every)
            wait(every)
        except KeyboardInterrupt:
            if last is None:
                return
            raise ColabsshError(f"stopped syncing; the last sync failed: {last.message}", last.hint,
                                last.exit_code) from None


def refuse_drive_commands(session: Session, command: str) -> None:
    """sync and restore need Drive on the runtime; a runtime made by `colab` has no notebook page to mount it."""
    if session.tunnel != Transport.COLAB_CLI:
        return
    raise ColabsshError(f"`colabssh {command}` needs Google Drive on the runtime, and '{session.alias}' has none: "
                        "drive.mount asks for consent on the notebook page, and a runtime made by `colab` has no page",
                        "copy work off the runtime with `colabssh pull PATH` (and onto it with `colabssh push PATH`); "
                        "for Drive backups, start the runtime from a notebook with the colabssh cell", BAD_INPUT)
