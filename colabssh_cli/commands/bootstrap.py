"""`colabssh bootstrap`: print the Colab cell (or write it to a file), or write it as a Colab notebook."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..app import app


@app.command()
def bootstrap(
    tunnel: str = typer.Option("ngrok", "--tunnel", "-t", help="ngrok, cloudflared or local."),
    public_key: Optional[Path] = typer.Option(
        None, "--public-key", help="Public key to authorise (default: colabssh's own key, made if missing)."),
    key_from_secret: bool = typer.Option(
        False, "--key-from-secret",
        help="Embed no key: the cell reads it from the Colab Secret COLABSSH_PUBKEY (a cell to keep in a notebook)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the cell to this file instead of stdout."),
    notebook: Optional[Path] = typer.Option(
        None, "--notebook",
        help="Write a Colab notebook (.ipynb) instead: the cell as a form (tunnel, sync_every, restore, "
             "fresh_host_key); upload it once, then open it and Run all on each new runtime. With --out, both "
             "files are written."),
    sync_every: Optional[int] = typer.Option(
        None, "--sync-every", min=0,
        help="Also back /content up to Drive on the runtime every N seconds (0: off). Default: 0 for the cell, "
             "600 for --notebook (a recycled runtime restores the last backup)."),
    no_restore: bool = typer.Option(
        False, "--no-restore",
        help="Do not restore an empty /content (and VS Code's server folders) from Drive when the cell runs."),
    fresh_host_key: bool = typer.Option(
        False, "--fresh-host-key",
        help="Give each runtime a host key of its own instead of the one kept on Drive (a recycled runtime then "
             "needs `colabssh connect` with its new code)."),
) -> None:
    """Print the Python cell to paste into Colab (or write a notebook that holds it)."""
    from ..cell import build_cell, write_atomically
    from ..paths import Paths

    paths = Paths.from_env()
    options = {"restore": not no_restore, "fresh_host_key": fresh_host_key}
    if notebook is None:
        cell = build_cell(tunnel, public_key, key_from_secret, sync_every or 0, paths, **options)
        if out is None:
            typer.echo(cell, nl=False)
            return
        write_atomically(out, cell)
        typer.echo(f"wrote the cell to {out}", err=True)
        return

    from ..notebook import write_notebook

    said = write_notebook(notebook, out, tunnel, public_key, key_from_secret, sync_every, paths, **options)
    for line in said:
        typer.echo(line, err=True)
