"""`colabssh forget`: remove a session (its Host block, pinned key, record)."""

from __future__ import annotations

import typer

from ..app import app


@app.command()
def forget(alias: str = typer.Argument(..., help="The session's alias (see `colabssh list`).")) -> None:
    """Remove a session: its Host block, its pinned key, and the Include when it was the last one.

    A forget that was interrupted half-way is finished, and ~/.ssh/config ends with your exact bytes.
    """
    from ..connection.commit import forget as run_forget
    from ..console import result, status
    from ..paths import Paths
    from ..session import load_sessions

    known = load_sessions(Paths.from_env()).get(alias)
    run_forget(alias, report=status)  # one line per file: what happened to it
    result(f"forgot {alias}")
    colab_session = known.colab_session if known is not None else ""
    if colab_session:
        result(f"the runtime of colab session '{colab_session}' keeps running (and using compute units): "
               f"`colab stop -s {colab_session}` ends it")
