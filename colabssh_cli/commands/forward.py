"""`colabssh forward`: a thin typer layer over colabssh_cli/forward.py."""

from __future__ import annotations

from typing import Optional

import typer

from ..app import app


@app.command()
def forward(
    ports: str = typer.Argument(..., metavar="PORT[:LOCAL_PORT]",
                                help="The runtime's port, and the local one (default: the same, or a free one)."),
    name: Optional[str] = typer.Option(None, "--name", "-n", metavar="ALIAS",
                                       help="The session to use (default: 'colab', or the only one)."),
    shared: bool = typer.Option(False, "--shared", help="Add the forward to the session's shared connection "
                                "(ssh -O forward) instead of opening one of its own; always so for --via colab-cli "
                                "sessions, which allow one connection."),
) -> None:
    """Forward a port of the runtime (TensorBoard, Jupyter, Gradio) to this machine until Ctrl-C.

    Prints the local URL on stdout once the forward is up. It goes over the session's own SSH settings
    (pinned host key, colabssh's key), on a connection of its own unless --shared; Ctrl-C stops it and exits 0.
    """
    from ..console import result, status
    from ..remote.forwarding import parse_spec, run_forward
    from ..remote.runner import Remote

    spec = parse_spec(ports)
    remote = Remote.for_alias(name)
    run_forward(remote, spec, on_ready=result, report=status, shared=shared)
