"""`colabssh push`: copy a local file or folder onto the runtime (rsync over the pinned connection)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..app import app
from .transfer_view import JSON_OPTION, NAME_OPTION, copy_with_view


@app.command()
def push(
    local_path: Path = typer.Argument(..., metavar="LOCAL_PATH", help="A local file or folder."),
    remote_dir: str = typer.Argument(".", metavar="REMOTE_DIR",
                                     help="The folder on the runtime it goes into (relative: to the content root)."),
    name: Optional[str] = NAME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Copy a local file or folder into a folder on the runtime (rsync over the pinned connection)."""
    copy_with_view("push", local_path, remote_dir, name, as_json)
