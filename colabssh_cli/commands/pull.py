"""`colabssh pull`: copy a file or folder from the runtime here (rsync over the pinned connection)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..app import app
from .transfer_view import JSON_OPTION, NAME_OPTION, copy_with_view


@app.command()
def pull(
    remote_path: str = typer.Argument(..., metavar="REMOTE_PATH",
                                      help="A file or folder on the runtime (relative: to the content root)."),
    local_dir: Path = typer.Argument(Path("."), metavar="LOCAL_DIR", help="Where it goes (default: here)."),
    name: Optional[str] = NAME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Copy a file or folder from the runtime into a local folder (rsync over the pinned connection)."""
    copy_with_view("pull", local_dir, remote_path, name, as_json)
