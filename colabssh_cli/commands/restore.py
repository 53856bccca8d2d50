"""`colabssh restore`: copy a Drive backup back into the runtime's content root."""

from __future__ import annotations

from typing import Optional

import typer

from ..app import app
from . import transfer_view as view


@app.command()
def restore(
    paths: Optional[list[str]] = view.paths_argument("Parts of the backup to restore (default: all of it)."),
    from_: str = typer.Option(view.DEFAULT_FOLDER, "--from", metavar="FOLDER",
                              help="The backup folder, relative to the Drive folder."),
    force: bool = typer.Option(False, "--force", help="Also overwrite files that are newer on the runtime."),
    dry_run: bool = view.DRY_RUN_OPTION,
    exclude: Optional[list[str]] = view.EXCLUDE_OPTION,
    name: Optional[str] = view.NAME_OPTION,
    as_json: bool = view.JSON_OPTION,
    verbose: bool = view.VERBOSE_OPTION,
) -> None:
    """Copy a Drive backup back into the runtime's content root (a fresh runtime + restore = the old one's work).

    Never overwrites a file that is newer on the runtime unless --force; never deletes anything. The cell does this
    by itself when it starts with an empty content root, and brings back the editor servers' folders
    (.vscode-server ...) that the home lacks; this command restores the content root only.
    """
    from ..remote.runner import Remote
    from ..transfer.client import SyncOptions, check, refuse_drive_commands

    remote = Remote.for_alias(name)
    refuse_drive_commands(remote.session, "restore")
    options = SyncOptions("restore", list(paths or []), from_, list(exclude or []), dry_run=dry_run, force=force)
    outcome = view.run_with_view(remote, options, verbose)
    view.print_outcome(outcome, as_json)
    check(outcome)
