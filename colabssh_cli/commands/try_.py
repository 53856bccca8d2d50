"""`colabssh try`: the whole journey against a throwaway local runtime."""

from __future__ import annotations

import typer

from ..app import app


@app.command("try")
def try_(
    open_editor: bool = typer.Option(
        False, "--open", help="Also open the editor (a profile of its own) on the throwaway runtime."),
    editor: str = typer.Option("code", "--editor", help="code, cursor or codium (with --open)."),
) -> None:
    """Try colabssh on this machine: a local runtime, connect, ssh, sync, demo, forget."""
    from ..console import status
    from ..editor import EDITORS
    from ..errors import BAD_INPUT, ColabsshError
    from ..sandbox import Tour

    if editor not in EDITORS:
        raise ColabsshError(f"unknown editor {editor!r}", f"use --editor {' or '.join(sorted(EDITORS))}", BAD_INPUT)

    Tour(status, open_editor, editor).run()
