"""What `colabssh sync`, `restore`, `pull` and `push` share: their options, the progress view and the summary.

Progress and status go to stderr (a rich progress bar: percent, files, bytes, rate); the summary goes to
stdout (with --json: one JSON document per run, and nothing else on stdout). Text that came from the runtime (file
names, paths, rsync's lines) is shown as plain text: never read as rich markup, control characters escaped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from colab_bootstrap.units import count, human_size, rsync_rate, took

if TYPE_CHECKING:
    from rich.progress import Progress

    from ..remote.runner import Remote
    from ..transfer.client import SyncOptions, SyncOutcome

def printable(text: str) -> str:
    """``colab_bootstrap.sync.protocol.printable``, imported when first used: `--help` and `--version` load
    every command module, and the protocol is the largest thing they would import."""
    from colab_bootstrap.sync.protocol import printable as escaped

    return escaped(text)


DEFAULT_FOLDER = "colabssh/content"  # sync.protocol.DEFAULT_FOLDER (literal: --help imports nothing more)

NAME_OPTION = typer.Option(None, "--name", "-n", metavar="ALIAS",
                     help="The session to use (default: 'colab', or the only one).")


def paths_argument(help: str) -> Any:
    """The PATH arguments of sync and restore: parts of the content root (or of the backup); default all."""
    return typer.Argument(None, metavar="PATH", help=help)


DRY_RUN_OPTION = typer.Option(False, "--dry-run", help="List what would change; change nothing.")
EXCLUDE_OPTION = typer.Option(None, "--exclude", "-x", metavar="PATTERN",
                              help="Leave out files matching an rsync pattern (repeatable).")
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document per run and nothing else on stdout.")
VERBOSE_OPTION = typer.Option(False, "--verbose", "-v", help="Show rsync's own lines as they come (otherwise only "
                              "those of a run that failed, at its end).")


class ProgressView:
    """Turns the runner's events into a progress bar and status lines on stderr. Every text is plain: a path such
    as ``[link=http://x]y[/link]`` shows as just that (never as rich markup), and control characters are escaped
    (``printable``).

    rsync's own lines are shown as they come only when VERBOSE; otherwise those of a run that failed are shown at
    its end (its advice says "see the messages above"), less rsync's closing "rsync error: ... (code N)" line and
    its words about signals (the error line says the same, in colabssh's words). A run that was stopped part-way
    shows none: its one line says what state it left."""

    def __init__(self, title: str, verbose: bool = False) -> None:
        self.title = printable(title)
        self.verbose = verbose
        self.progress: Optional[Progress] = None
        self.task: Any = None

    def __enter__(self) -> ProgressView:
        if not sys.stderr.isatty():  # no bar in a pipe or a log: status lines only (and no rich to import)
            return self
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        from ..console import err_console

        def plain(template: str) -> TextColumn:
            return TextColumn(template, markup=False)

        self.progress = Progress(plain("{task.description}"), BarColumn(), TaskProgressColumn(),
                                 plain("{task.fields[files]}"), plain("{task.fields[size]}"),
                                 plain("{task.fields[rate]}"), TimeElapsedColumn(),
                                 console=err_console(), transient=True)
        self.progress.start()
        self.task = self.progress.add_task(self.title, total=100, files=count(0, "file"), size="0 B", rate="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def say(self, text: str) -> None:
        text = printable(text)
        if self.progress is not None:
            self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            sys.stderr.write(text + "\n")

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "start":
            what = "restoring" if event.get("mode") == "restore" else "syncing"
            dry = " (dry run: nothing is changed)" if event.get("dry_run") else ""
            # A backup's runner no longer counts the tree before rsync walks it (restore's still does).
            counted = (f": {count(event['files'], 'file')}, {human_size(event.get('bytes', 0))}"
                       if isinstance(event.get("files"), int) else "")
            self.say(f"{what} {event.get('source')} -> {event.get('dest')}{counted}{dry}")
        elif kind == "progress" and self.progress is not None:
            path = printable(event.get("current") or self.title)
            self.progress.update(self.task, completed=min(int(event.get("percent", 0)), 100),
                                 description=path if len(path) <= 40 else "..." + path[-37:],
                                 files=count(int(event.get("files", 0)), "file"),
                                 size=human_size(event.get("bytes", 0)),
                                 rate=printable(rsync_rate(str(event.get("rate", "")))))
        elif kind == "warning":
            self.say(f"colabssh: warning: {event.get('message')}")
            if event.get("hint"):
                self.say(f"  hint: {event.get('hint')}")
        elif kind == "message" and (self.verbose or not event.get("rsync")):
            self.say(f"  {event.get('text')}")
        elif kind == "result" and not self.verbose:
            for line in failure_lines(event):
                self.say(f"  {line}")


def failure_lines(report: dict[str, Any]) -> list[str]:
    """rsync's lines worth showing for a failed run (none for a run that succeeded or was stopped part-way)."""
    from ..transfer.client import SyncResult, was_interrupted

    result = SyncResult.from_event(report)
    if not result.exit or result.lost or was_interrupted(result):
        return []
    return [str(line) for line in result.messages if not is_rsync_noise(str(line))]


def is_rsync_noise(line: str) -> bool:
    """rsync's closing line ("rsync error: ... (code 23) at main.c(1338) [sender=3.2.7]") and its words about
    signals and broken pipes: what colabssh's own error line says better."""
    return line.startswith("rsync error:") or "received SIG" in line or "Broken pipe" in line \
        or "connection unexpectedly closed" in line


def change_label(change: str) -> str:
    """What a dry run says about one itemized change ('' for folders)."""
    if change.startswith("*deleting"):
        return "would move to the trash"
    if change[1:2] != "f":
        return ""
    return "would copy (new)" if "+++++++++" in change else "would update"


def _are(n: int) -> str:
    return "is" if n == 1 else "are"


def summary_lines(outcome: SyncOutcome) -> list[str]:
    """The human summary of one run (stdout), plain text (names from the runtime escaped: ``printable``)."""
    return [printable(line) for line in _summary(outcome)]


def _summary(outcome: SyncOutcome) -> list[str]:
    report = outcome.result
    restore = report.mode == "restore"
    lines: list[str] = []
    if report.dry_run:
        for change in outcome.changes:
            label = change_label(change["change"])
            if label:
                lines.append(f"{label}: {change['path']}")
        counts = (f"{count(report.new_files + report.changed_files, 'file')} to copy ({report.new_files:,} new, "
                  f"{report.changed_files:,} changed)" + (f", {count(report.deleted, 'entry')} to the trash"
                                                          if not restore else ""))
        lines.append(f"dry run of {'restore' if restore else 'sync'} {report.source} -> {report.dest}: {counts}; "
                     "nothing was changed")
        return lines + editors_lines(report.editors, dry_run=True)
    verb = "restored" if restore else "synced"
    copied = report.new_files + report.changed_files
    unchanged = max(int(report.files_total) - copied, 0)
    what = (f"{count(copied, 'file')} copied ({report.new_files:,} new, {report.changed_files:,} changed; "
            f"{human_size(report.bytes_copied)}), {unchanged:,} unchanged" if copied
            else f"nothing to copy, {count(unchanged, 'file')} unchanged")
    lines.append(f"{verb} {report.source} -> {report.dest}: {what}, {took(report.seconds)}")
    if report.deleted or (report.trash and report.changed_files):
        moved = report.deleted + (report.changed_files if report.trash else 0)
        lines.append(f"moved to the trash: {count(moved, 'file')} ({report.deleted:,} deleted, "
                     f"{report.changed_files:,} replaced), in {report.trash}")
    if report.skipped:
        shown = ", ".join(report.skipped[:10]) + (" ..." if len(report.skipped) > 10 else "")
        lines.append(f"not copied (symbolic links and special files are skipped): {shown}")
    if report.kept_newer_count:
        shown = ", ".join(report.kept_newer[:10]) + (" ..." if report.kept_newer_count > 10 else "")
        lines.append(f"kept {count(report.kept_newer_count, 'file')} that {_are(report.kept_newer_count)} newer on "
                     f"the runtime (--force overwrites them): {shown}")
    lines += editors_lines(report.editors)
    if outcome.exit_code == 0 and not restore:
        if report.drive_cache:
            lines.append("written to Drive's local cache on the runtime; Google Drive is still uploading it in the "
                         "background (large files take minutes): check drive.google.com before the runtime ends")
        elif copied or report.deleted:
            lines.append(f"copied into {report.dest}")
        else:  # nothing was copied: say the backup is whole, not that something went there
            lines.append(f"the backup in {report.dest} is up to date")
    return lines


EDITOR_LABELS = {".vscode-server": "VS Code server", ".cursor-server": "Cursor server",
                 ".vscodium-server": "VSCodium server"}  # colab_bootstrap.sync.editors.LABELS


def editors_lines(editors: Optional[dict[str, Any]], dry_run: bool = False) -> list[str]:
    """The one line on the editor folders a full backup keeps on Drive (none when it carried none)."""
    if not isinstance(editors, dict) or not editors.get("names"):
        return []
    names = [str(name) for name in editors["names"]]
    kinds = {EDITOR_LABELS.get(name, name) for name in names}
    what = kinds.pop() if len(kinds) == 1 else "editor servers"
    folders = f"{count(len(names), 'folder')} ({', '.join(names)})"
    files, size = int(editors.get("files") or 0), human_size(int(editors.get("bytes") or 0))
    copied_size = human_size(int(editors.get("bytes_copied") or 0))
    copied = f"{count(int(editors.get('files_copied') or 0), 'file')} ({copied_size})"
    if editors.get("exit") is None:
        return [f"{what}: {folders} not kept on Drive: the run stopped before their copy (see above)"]
    if dry_run:
        return [f"dry run: {what}: {folders}, {count(files, 'file')}, {size}; would copy {copied} to Drive"]
    line = f"{what}: {folders}, {count(files, 'file')}, {size} kept on Drive ({copied} copied now)"
    if editors.get("exit"):
        line += f"; exit {editors['exit']}: " + "; ".join(str(m) for m in editors.get("messages") or [])
    return [line]


def print_outcome(outcome: SyncOutcome, as_json: bool) -> None:
    """The run's summary on stdout; none for a run stopped part-way (its counts are what rsync had begun, not what
    it finished): ``client.check`` says what state it left."""
    from ..console import result
    from ..transfer.client import was_interrupted

    if as_json:
        result(json.dumps(outcome.as_json()))
    elif not was_interrupted(outcome.result):
        for line in summary_lines(outcome):
            result(line)


def run_with_view(remote: Remote, options: Optional[SyncOptions], verbose: bool = False) -> SyncOutcome:
    """One run with its progress bar; options None: follow the run in progress (--attach). VERBOSE: rsync's own
    lines as they come."""
    from ..transfer import client as sync_client

    if options is None:
        with ProgressView(f"{remote.alias}: following", verbose) as view:
            return sync_client.attach(remote, view)
    with ProgressView(f"{remote.alias}: {'restore' if options.mode == 'restore' else 'sync'}", verbose) as view:
        return sync_client.run_sync(remote, options, view)


def copy_with_view(direction: str, local: Path, runtime_path: str, name: Optional[str], as_json: bool) -> None:
    from ..console import result, status
    from ..remote.runner import Remote
    from ..transfer.copy import transfer

    remote = Remote.for_alias(name)
    with ProgressView(f"{remote.alias}: {direction}") as view:
        outcome = transfer(remote, direction, local, runtime_path, view)
    if outcome.tool == "scp":
        status("(no rsync on this machine: copied with scp, without progress or skipping unchanged files)")
    if as_json:
        result(json.dumps(outcome.as_json()))
    else:
        result(printable(f"{'pushed' if direction == 'push' else 'pulled'} {outcome.source} -> {outcome.target}"
                         + (f": {count(outcome.files_copied, 'file')}, {human_size(outcome.bytes_copied)}"
                            if outcome.tool == "rsync" else "") + f" {took(outcome.seconds)}"))
