"""`colabssh bootstrap`: print the Colab cell (or write it to a file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from ..app import app
from ..errors import BAD_INPUT, ColabsshError


@app.command()
def bootstrap(
    tunnel: str = typer.Option("ngrok", "--tunnel", "-t", help="ngrok, cloudflared or local."),
    public_key: Optional[Path] = typer.Option(
        None, "--public-key", help="Public key to authorise (default: colabssh's own key, made if missing)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the cell to this file instead of stdout."),
    sync_every: int = typer.Option(
        0, "--sync-every", min=0, help="Also back /content up to Drive on the runtime every N seconds (0: off)."),
) -> None:
    """Print the Python cell to paste into Colab."""
    from colab_bootstrap.errors import BootstrapError
    from colab_bootstrap.pubkey import authorised_key_line

    from ..cell import render_cell
    from ..keys import ensure_client_key
    from ..paths import Paths

    if tunnel not in ("ngrok", "cloudflared", "local"):
        raise ColabsshError(f"unknown tunnel kind {tunnel!r}", "use --tunnel ngrok, cloudflared or local",
                            BAD_INPUT)
    if public_key is None:
        key_text = ensure_client_key(Paths.from_env())
    else:
        try:
            key_text = public_key.read_text(encoding="utf-8", errors="strict")
        except (OSError, UnicodeDecodeError) as exc:
            raise ColabsshError(f"cannot read the public key {public_key}: {getattr(exc, 'strerror', exc)}",
                                "pass a .pub file", BAD_INPUT) from None
    try:
        key_line = authorised_key_line(key_text)
    except BootstrapError as exc:
        raise ColabsshError(f"{public_key or 'the key'}: {exc.message}", exc.hint, BAD_INPUT) from None
    cell = render_cell(tunnel, key_line, sync_every)
    if out is None:
        typer.echo(cell, nl=False)
        return
    tmp = out.with_name(f".{out.name}.colabssh-tmp")
    try:
        tmp.write_text(cell, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ColabsshError(f"cannot write {out}: {exc.strerror}", "choose another --out path") from None
    typer.echo(f"wrote the cell to {out}", err=True)
