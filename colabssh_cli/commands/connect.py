"""`colabssh connect`: a thin typer layer over colabssh_cli/connection/ (flow.py and its transports)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from .. import DEFAULT_ALIAS
from ..app import app

if TYPE_CHECKING:
    from ..connection.flow import ConnectResult
    from ..editor import EditorOutcome


# The options for a runtime that the older colab-ssh package started (`launch_ssh`, `launch_ssh_cloudflared`), shown
# in a panel of their own: a colabssh cell's code never needs them.
COLAB_SSH_PANEL = "For sessions started by the older colab-ssh package (instead of a code)"


@app.command(context_settings={"allow_extra_args": True})
def connect(
    ctx: typer.Context,
    code: Optional[str] = typer.Argument(
        None, show_default=False,
        help="The code the cell printed: colabssh1:... (quoted, or the whole `colabssh connect CODE` line, "
             "is fine too)."),
    name: str = typer.Option(DEFAULT_ALIAS, "--name", "-n", help="The ssh alias for this runtime."),
    no_open: bool = typer.Option(False, "--no-open", help="Do not open the editor."),
    editor: str = typer.Option("code", "--editor", help="code, cursor or codium."),
    no_check: bool = typer.Option(False, "--no-check", help="Write the config without logging in first."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the diff of the files; write nothing."),
    host: Optional[str] = typer.Option(None, "--host", help="colab-ssh (ngrok): the HostName it printed.",
                                       rich_help_panel=COLAB_SSH_PANEL),
    port: Optional[str] = typer.Option(None, "--port", help="colab-ssh (ngrok): the Port it printed.",
                                       rich_help_panel=COLAB_SSH_PANEL),
    cloudflared_host: Optional[str] = typer.Option(
        None, "--cloudflared-host", help="colab-ssh (cloudflared): the trycloudflare.com host name.",
        rich_help_panel=COLAB_SSH_PANEL),
    password: bool = typer.Option(False, "--password",
                                  help="colab-ssh runtimes: log in with the password (asked by ssh/VS Code).",
                                  rich_help_panel=COLAB_SSH_PANEL),
    user: str = typer.Option("root", "--user", help="colab-ssh runtimes: the user to log in as.",
                             rich_help_panel=COLAB_SSH_PANEL),
    via: Optional[str] = typer.Option(None, "--via", metavar="colab-cli",
                                      help="Reach the runtime through Google's `colab ssh --proxy-mode` (no cell, "
                                           "no tunnel; docs/colab-cli.md)."),
    session: Optional[str] = typer.Option(None, "--session", "-s",
                                          help="--via colab-cli: the colab session name (default: the alias); "
                                               "colab creates it when missing."),
    gpu: Optional[str] = typer.Option(None, "--gpu", metavar="T4|L4|G4|A100|H100",
                                      help="--via colab-cli: the GPU of a runtime colab creates."),
    drive_folder: Optional[str] = typer.Option(
        None, "--drive-folder", metavar="PATH|auto|none",
        help="Where Google Drive for desktop shows \"My Drive\": ssh then finds a recycled runtime by itself "
             "(auto: the one found; none: drop the recorded one; docs/connect.md)."),
) -> None:
    """Connect this machine (ssh and VS Code) to the runtime whose code the cell printed.

    Or, with --via colab-cli, to a runtime that Google's `colab` CLI reaches (`colab ssh --proxy-mode`).
    """
    from ..comeback import ngrok_api_key
    from ..comeback.drive_folder import for_connect
    from ..connection.colab_cli import ColabCliConnector
    from ..connection.colab_cli_input import check_transport_arguments
    from ..connection.flow import ConnectOptions
    from ..connection.flow import connect as run_connect
    from ..connection.tunnel import TunnelConnector, uses_relay
    from ..connection.tunnel_input import TunnelInput, code_from_words
    from ..console import status
    from ..session import Login

    code = code_from_words([code, *ctx.args] if code is not None else list(ctx.args))
    given = {"CODE": code is not None, "--host": host is not None, "--port": port is not None,
             "--cloudflared-host": cloudflared_host is not None, "--password": password, "--user": user != "root",
             "--drive-folder": drive_folder is not None}
    code_options = [option for option, present in given.items() if present]
    options = ConnectOptions(alias=name, open_editor=not no_open, editor=editor, check=not no_check, dry_run=dry_run)
    if check_transport_arguments(via, session=session, gpu=gpu, code_options=code_options):
        _show_colab_cli(run_connect(options, lambda alias: ColabCliConnector(alias, session, gpu), report=status))
        return
    folder, drive_notes = for_connect(name, code, drive_folder)
    tunnel_input = TunnelInput(code=code, host=host, port=port, cloudflared_host=cloudflared_host, password=password,
                               user=user, drive_folder=folder)
    outcome = run_connect(options, lambda alias: TunnelConnector.from_input(alias, tunnel_input), report=status)
    target = outcome.session
    if outcome.dry_run:
        _write_diff(outcome.diff)
        return
    lines = [f"{outcome.alias}: {target.user}@{target.address} ({target.tunnel} tunnel)"]
    if target.pinned:
        lines.append(f"host key {target.fingerprint} (pinned from the code)")
    elif outcome.presented_fingerprint:
        lines.append(f"host key {outcome.presented_fingerprint} (shown by the runtime now; not pinned: ssh and VS "
                     "Code ask once, accept it only if it is this one)")
    if outcome.login_checked:
        lines.append(f"ssh {outcome.alias} works (checked with OpenSSH)")
    elif target.auth == Login.PASSWORD:
        lines.append(f"ssh {outcome.alias} asks for the password you gave colab-ssh (colabssh never stores it)")
    lines += drive_notes
    if uses_relay(target):
        ways = (["Drive's newest code with this host key"] if target.drive_folder else []) + \
            (["the ngrok API"] if ngrok_api_key() else [])
        lines.append(f"ssh {outcome.alias} finds a recycled runtime by itself (the ProxyCommand, colabssh's relay, "
                     f"asks {' and '.join(ways)}; a new host key is always refused)")
    _show_outcome(outcome.alias, outcome.written, lines, outcome.editor)


def _show_outcome(alias: str, written: list[Path], lines: list[str], editor: Optional[EditorOutcome]) -> None:
    """What connect did, whatever the transport: the files written (stderr), then LINES and the editor's notes (stdout);
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


def _show_colab_cli(outcome: ConnectResult) -> None:
    if outcome.dry_run:
        _write_diff(outcome.diff)
        return
    runtime = outcome.session
    gpu_note = f"; GPU {runtime.gpu} when colab creates the runtime" if runtime.gpu else ""
    lines = [f"{outcome.alias}: root@{runtime.address} (Google's `colab ssh --proxy-mode`{gpu_note})"]
    if outcome.replaced_fingerprint:
        lines.append(f"host key {outcome.fingerprint} (a new runtime behind '{runtime.colab_session}': it replaces "
                     f"the pin {outcome.replaced_fingerprint})")
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
