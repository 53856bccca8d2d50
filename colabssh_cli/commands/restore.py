"""`colabssh restore`: copy a Drive backup back into the runtime's content root."""

from __future__ import annotations

from typing import Optional

import typer

from ..app import app
from .transfer_view import (
    DEFAULT_FOLDER,
    DRY_RUN_OPTION,
    EXCLUDE_OPTION,
    JSON_OPTION,
    NAME_OPTION,
    print_outcome,
    run_with_view,
)


@app.command()
def restore(
    paths: Optional[list[str]] = typer.Argument(None, metavar="PATH",
                                               help="Parts of the backup to restore (default: all of it)."),
    from_: str = typer.Option(DEFAULT_FOLDER, "--from", metavar="FOLDER",
                              help="The backup folder, relative to the Drive folder."),
    force: bool = typer.Option(False, "--force", help="Also overwrite files that are newer on the runtime."),
    dry_run: bool = DRY_RUN_OPTION,
    exclude: Optional[list[str]] = EXCLUDE_OPTION,
    name: Optional[str] = NAME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Copy a Drive backup back into the runtime's content root (a fresh runtime + restore = the old one's work).

    Never overwrites a file that is newer on the runtime unless --force; never deletes anything.
    """
    from ..connection.colab_cli import refuse_drive_commands
    from ..remote.runner import Remote
    from ..transfer.client import SyncOptions, check

    remote = Remote.for_alias(name)
    refuse_drive_commands(remote.session, "restore")
    options = SyncOptions("restore", list(paths or []), from_, list(exclude or []), dry_run=dry_run, force=force)
    outcome = run_with_view(remote, options)
    print_outcome(outcome, as_json)
    check(outcome)
