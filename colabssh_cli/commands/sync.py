"""`colabssh sync`: back the runtime's content root up to Drive (rsync on the runtime)."""

from __future__ import annotations

from typing import Optional

import typer

from ..app import app
from . import transfer_view as view


@app.command()
def sync(
    paths: Optional[list[str]] = view.paths_argument("Parts of the content root to back up (default: all of it)."),
    to: str = typer.Option(view.DEFAULT_FOLDER, "--to", metavar="FOLDER",
                           help="The backup folder, relative to the Drive folder."),
    dry_run: bool = view.DRY_RUN_OPTION,
    delete: bool = typer.Option(False, "--delete", help="Also remove from the backup what is gone from the runtime "
                                "(moved, with replaced files, to a dated trash folder on Drive)."),
    exclude: Optional[list[str]] = view.EXCLUDE_OPTION,
    every: int = typer.Option(0, "--every", min=0, metavar="SECONDS",
                              help="Keep syncing on this period until Ctrl-C (a failed run is reported; the next "
                              "one still runs)."),
    attach: bool = typer.Option(False, "--attach", help="Follow the sync running on the runtime (one a dropped "
                                "connection left going, or the cell's periodic sync) to its end, or replay the last "
                                "one."),
    bwlimit: int = typer.Option(0, "--bwlimit", min=0, metavar="RATE",
                                 help="Limit rsync's rate to RATE KiB/s."),
    name: Optional[str] = view.NAME_OPTION,
    as_json: bool = view.JSON_OPTION,
    verbose: bool = view.VERBOSE_OPTION,
) -> None:
    """Back the runtime's content root (/content) up to Google Drive, with rsync on the runtime.

    The backup mirrors the content root's layout in FOLDER inside the Drive folder (default colabssh/content).
    Always left out: drive/, sample_data/, .config/ and caches; a .colabsshignore file in the content root adds
    rsync exclude patterns, one per line (# starts a comment). Nothing is deleted from the backup unless --delete.

    A full sync (no PATH) also keeps the editor servers' folders of the runtime's home (.vscode-server,
    .cursor-server, .vscodium-server) on Drive in colabssh/home, as a few archives (one per server build and
    extension, rewritten only when it changed), without logs, sockets, pid, lock and token files and caches; a new
    runtime's cell brings them back, so the editor's server need not download again.

    Ctrl-C stops the sync on the runtime too, and says what state the backup is in (exit 130). A dropped connection
    does not: the sync goes on there, and --attach follows it (or replays the last one) to its end.
    Exit code: rsync's when it failed.
    """
    from ..console import status
    from ..errors import BAD_INPUT, ColabsshError
    from ..remote.runner import Remote
    from ..transfer.client import SyncOptions, check, refuse_drive_commands, run_every

    if attach and (paths or delete or dry_run or every or exclude):
        raise ColabsshError("--attach follows the running sync; it takes no other options", "", BAD_INPUT)
    remote = Remote.for_alias(name)
    refuse_drive_commands(remote.session, "sync")  # colab-cli runtimes have no Drive (docs/colab-cli.md)
    options = None if attach else SyncOptions("backup", list(paths or []), to, list(exclude or []), delete, dry_run,
                                              bwlimit=bwlimit)
    if not every:
        outcome = view.run_with_view(remote, options, verbose)
        view.print_outcome(outcome, as_json)
        check(outcome, attached=attach)
        return

    def failed(exc: ColabsshError) -> None:
        status(f"colabssh: this sync failed: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))

    run_every(every, lambda: view.run_with_view(remote, options, verbose),
              lambda outcome: view.print_outcome(outcome, as_json), failed,
              lambda seconds: status(f"next sync in {seconds:g} s (Ctrl-C stops)"))
    status("colabssh: stopped syncing")
