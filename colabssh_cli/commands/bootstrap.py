"""`colabssh bootstrap`: print the Colab cell (or write it to a file)."""

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
    sync_every: int = typer.Option(
        0, "--sync-every", min=0, help="Also back /content up to Drive on the runtime every N seconds (0: off)."),
    no_restore: bool = typer.Option(
        False, "--no-restore",
        help="Do not restore an empty /content (and VS Code's server folders) from Drive when the cell runs."),
    fresh_host_key: bool = typer.Option(
        False, "--fresh-host-key",
        help="Give each runtime a host key of its own instead of the one kept on Drive (a recycled runtime then "
             "needs `colabssh connect` with its new code)."),
) -> None:
    """Print the Python cell to paste into Colab."""
    from ..cell import build_cell, write_atomically
    from ..paths import Paths

    cell = build_cell(tunnel, public_key, key_from_secret, sync_every, Paths.from_env(), restore=not no_restore,
                      fresh_host_key=fresh_host_key)
    if out is None:
        typer.echo(cell, nl=False)
        return
    write_atomically(out, cell)
    typer.echo(f"wrote the cell to {out}", err=True)
