"""`colabssh ssh`: OpenSSH with the session's alias, a shell or one remote command."""

from __future__ import annotations

from typing import Any, Optional

import typer
from typer.core import TyperCommand

from ..app import app

REMOTE_COMMAND = "colabssh.remote_command"


class _RemoteCommandSplit(TyperCommand):
    """Everything after ``--`` is the remote command, kept apart before click parses the rest."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # a click Context (typer vendors click)
        if "--" in args:
            cut = args.index("--")
            ctx.meta[REMOTE_COMMAND] = args[cut + 1:]
            args = args[:cut]
        return super().parse_args(ctx, args)


@app.command(cls=_RemoteCommandSplit)
def ssh(ctx: typer.Context,
        alias: Optional[str] = typer.Argument(None, help="The session (default: colab, or the only one).")) -> None:
    """Run OpenSSH with the session's alias: a shell, or `colabssh ssh [ALIAS] -- COMMAND...`."""
    from ..errors import ColabsshError
    from ..remote.runner import Remote, explain_ssh_failure

    remote = Remote.for_alias(alias)
    command: list[Any] = ctx.meta.get(REMOTE_COMMAND, [])
    done = remote.interactive(command)
    if done.returncode == 255:  # ssh itself failed, and said why as it did: advice that reads it, ssh's exit code
        advice = explain_ssh_failure(remote.alias, 255, done.stderr, shown=True)
        raise ColabsshError(advice.message, advice.hint, 255)
    raise typer.Exit(done.returncode)
