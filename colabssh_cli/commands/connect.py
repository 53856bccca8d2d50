"""`colabssh connect` and `colabssh forget`: thin typer layers over colabssh_cli/connect.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ..app import app
from ..session import DEFAULT_ALIAS

if TYPE_CHECKING:
    from ..editor import EditorOutcome


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
    via: Optional[str] = typer.Option(None, "--via", metavar="colab-cli",
                                      help="Reach the runtime through Google's `colab ssh --proxy-mode` (no cell, "
                                           "no tunnel; docs/colab-cli.md)."),
    session: Optional[str] = typer.Option(None, "--session", "-s",
                                          help="--via colab-cli: the colab session name (default: the alias); "
                                               "colab creates it when missing."),
    gpu: Optional[str] = typer.Option(None, "--gpu", metavar="T4|L4|G4|A100|H100",
                                      help="--via colab-cli: the GPU of a runtime colab creates."),
) -> None:
    """Connect this machine (ssh and VS Code) to the runtime whose code the cell printed.

    Or, with --via colab-cli, to a runtime that Google's `colab` CLI reaches (`colab ssh --proxy-mode`).
    """
    from ..connection.colab_cli import check_road_arguments
    from ..connection.flow import ConnectOptions
    from ..connection.flow import connect as run_connect
    from ..console import status

    given = {"CODE": code is not None, "--host": host is not None, "--port": port is not None,
             "--cloudflared-host": cloudflared_host is not None, "--password": password, "--user": user != "root"}
    code_road = [option for option, present in given.items() if present]
    if check_road_arguments(via, session=session, gpu=gpu, code_road_options=code_road):
        _connect_via_colab_cli(session, gpu, name, no_open, editor, no_check, dry_run)
        return
    options = ConnectOptions(code=code, alias=name, open_editor=not no_open, editor=editor, check=not no_check,
                             dry_run=dry_run, host=host, port=port, cloudflared_host=cloudflared_host,
                             password=password, user=user)
    outcome = run_connect(options, report=status)
    target = outcome.target
    if outcome.dry_run:
        _write_diff(outcome.diff)
        return
    lines = [f"{outcome.alias}: {target.user}@{target.where} ({target.tunnel} tunnel)"]
    if target.pinned:
        lines.append(f"host key {target.fingerprint} (pinned from the code)")
    elif outcome.presented_fingerprint:
        lines.append(f"host key {outcome.presented_fingerprint} (shown by the runtime now; not pinned: ssh and VS "
                     "Code ask once, accept it only if it is this one)")
    if outcome.login_checked:
        lines.append(f"ssh {outcome.alias} works (checked with OpenSSH)")
    elif target.auth == "password":
        lines.append(f"ssh {outcome.alias} asks for the password you gave colab-ssh (colabssh never stores it)")
    _show_outcome(outcome.alias, outcome.written, lines, outcome.editor)


def _show_outcome(alias: str, written: list[Path], lines: list[str], editor: Optional[EditorOutcome]) -> None:
    """What either road of connect did: the files written (stderr), then LINES and the editor's notes (stdout);
    last a warning when plain ssh and VS Code read another ~/.ssh/config than the one colabssh wrote."""
    from ..console import result, status
    from ..paths import Paths
    from ..sshconfig.openssh_home import plain_ssh_problem

    for path in written:
        status(f"wrote {path}")
    if not written:
        status("no file changed (already connected to this runtime)")
    paths = Paths.from_env()
    problem = plain_ssh_problem(paths, alias)
    for line in lines:
        if problem is not None and line.startswith(f"ssh {alias} works"):
            line = line.replace("(checked with OpenSSH", f"(checked with OpenSSH given -F {paths.user_config}", 1)
        result(line)
    if editor is not None:
        for note in editor.notes:
            result(note)
    if problem is not None:
        status(f"colabssh: warning: {problem.message}")
        status(f"  hint: {problem.hint}")


def _write_diff(diff: str) -> None:
    from ..console import status

    if diff:
        sys.stdout.flush()
        sys.stdout.buffer.write(diff.encode("utf-8", "surrogateescape"))  # the exact bytes
        sys.stdout.buffer.flush()
        status("dry run: the diff above is what connect would change; nothing was written")
    else:
        status("dry run: connect would change no file")


def _connect_via_colab_cli(session: Optional[str], gpu: Optional[str], alias: str, no_open: bool, editor: str,
                           no_check: bool, dry_run: bool) -> None:
    from ..connection.colab_cli import ColabCliOptions, connect_via_colab_cli
    from ..console import status

    options = ColabCliOptions(session=session, gpu=gpu, alias=alias, open_editor=not no_open, editor=editor,
                              check=not no_check, dry_run=dry_run)
    outcome = connect_via_colab_cli(options, report=status)
    if outcome.dry_run:
        _write_diff(outcome.diff)
        return
    gpu_note = f"; GPU {outcome.gpu} when colab creates the runtime" if outcome.gpu else ""
    lines = [f"{outcome.alias}: root@colab-cli:{outcome.session} (Google's `colab ssh --proxy-mode`{gpu_note})"]
    if outcome.replaced_fingerprint:
        lines.append(f"host key {outcome.fingerprint} (a new runtime behind '{outcome.session}': it replaces the pin "
                     f"{outcome.replaced_fingerprint})")
    elif outcome.fingerprint:
        lines.append(f"host key {outcome.fingerprint} (pinned at first contact, through Colab's authenticated "
                     "connection)")
    else:
        lines.append(f"host key not pinned yet: the first `ssh {outcome.alias}` pins it (StrictHostKeyChecking "
                     "accept-new)")
    if outcome.login_checked:
        shared = " through its open shared connection" if outcome.through_shared_connection else ""
        lines.append(f"ssh {outcome.alias} works (checked with OpenSSH{shared}); ssh, VS Code and colabssh share its "
                     "one connection")
    _show_outcome(outcome.alias, outcome.written, lines, outcome.editor)
