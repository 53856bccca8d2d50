"""`colabssh connect` and `colabssh forget`: thin typer layers over colabssh_cli/connect.py."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from ..app import app
from ..sessions import DEFAULT_ALIAS


@app.command()
def connect(
    code: Optional[str] = typer.Argument(None, help="The code the cell printed: colabssh1:...", show_default=False),
    name: str = typer.Option(DEFAULT_ALIAS, "--name", "-n", help="The ssh alias for this runtime."),
    no_open: bool = typer.Option(False, "--no-open", help="Do not open the editor."),
    editor: str = typer.Option("code", "--editor", help="code, cursor or codium."),
    no_check: bool = typer.Option(False, "--no-check", help="Write the config without logging in first."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the diff of the files; write nothing."),
    host: Optional[str] = typer.Option(None, "--host", help="colab-ssh (ngrok): the HostName it printed."),
    port: Optional[str] = typer.Option(None, "--port", help="colab-ssh (ngrok): the Port it printed."),
    cloudflared_host: Optional[str] = typer.Option(
        None, "--cloudflared-host", help="colab-ssh (cloudflared): the trycloudflare.com host name."),
    password: bool = typer.Option(False, "--password",
                                  help="colab-ssh runtimes: log in with the password (asked by ssh/VS Code)."),
    user: str = typer.Option("root", "--user", help="colab-ssh runtimes: the user to log in as."),
) -> None:
    """Connect this machine (ssh and VS Code) to the runtime whose code the cell printed."""
    from ..connect import ConnectOptions
    from ..connect import connect as run_connect
    from ..console import result, status

    options = ConnectOptions(code=code, alias=name, open_editor=not no_open, editor=editor, check=not no_check,
                             dry_run=dry_run, host=host, port=port, cloudflared_host=cloudflared_host,
                             password=password, user=user)
    outcome = run_connect(options, report=status)
    target = outcome.target
    if outcome.dry_run:
        if outcome.diff:
            sys.stdout.flush()
            sys.stdout.buffer.write(outcome.diff.encode("utf-8", "surrogateescape"))  # the exact bytes
            sys.stdout.buffer.flush()
            status("dry run: the diff above is what connect would change; nothing was written")
        else:
            status("dry run: connect would change no file")
        return
    for path in outcome.written:
        status(f"wrote {path}")
    if not outcome.written:
        status("no file changed (already connected to this runtime)")
    result(f"{outcome.alias}: {target.user}@{target.where} ({target.tunnel} tunnel)")
    if target.pinned:
        result(f"host key {target.fingerprint} (pinned from the code)")
    elif outcome.presented_fingerprint:
        result(f"host key {outcome.presented_fingerprint} (shown by the runtime now; not pinned: ssh and VS Code "
               "ask once, accept it only if it is this one)")
    if outcome.login_checked:
        result(f"ssh {outcome.alias} works (checked with OpenSSH)")
    elif target.auth == "password":
        result(f"ssh {outcome.alias} asks for the password you gave colab-ssh (colabssh never stores it)")
    if outcome.editor is not None:
        for line in outcome.editor.notes:
            result(line)


@app.command()
def forget(alias: str = typer.Argument(..., help="The session's alias (see `colabssh list`).")) -> None:
    """Remove a session: its Host block, its pinned key, and the Include when it was the last one."""
    from ..connect import forget as run_forget
    from ..console import result, status

    for path in run_forget(alias, report=status):
        status(f"wrote {path}")
    result(f"forgot {alias}")
