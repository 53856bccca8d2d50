"""`colabssh list`: the sessions colabssh knows."""

from __future__ import annotations

import json
import sys

import typer

from ..app import app


@app.command("list")
def list_sessions(as_json: bool = typer.Option(False, "--json", help="Print the sessions as JSON.")) -> None:
    """List the sessions colabssh has connected."""
    from ..console import out_console, status
    from ..paths import Paths
    from ..session import Login, load_sessions

    sessions = load_sessions(Paths.from_env())
    if as_json:
        rows = [{"alias": s.alias, "host": s.host, "port": s.port, "user": s.user, "tunnel": s.tunnel,
                 "auth": s.auth, "pinned": bool(s.hostkey), "gpu": s.gpu, "content": s.content,
                 "connected_at": s.connected_at} for s in sessions.values()]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if not sessions:
        status("no sessions yet: run the cell in Colab, then `colabssh connect CODE`")
        return
    from rich.table import Table

    from ..console import cell

    table = Table(box=None, pad_edge=False)
    for column in ("alias", "address", "tunnel", "GPU", "connected (UTC)"):
        table.add_column(column)
    for s in sessions.values():  # every cell as plain text: the GPU name and the rest came from the runtime
        table.add_row(cell(s.alias), cell(f"{s.user}@{s.address}"),
                      cell(s.tunnel + (" (password)" if s.auth == Login.PASSWORD else "")),
                      cell(s.gpu or "-"), cell(s.connected_at.replace("T", " ").rstrip("Z") or "-"))
    out_console().print(table)
