"""`colabssh list`, `colabssh status` and `colabssh ssh`: the sessions colabssh knows, and their runtimes."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer
from typer.core import TyperCommand

from ..app import app

REMOTE_COMMAND = "colabssh.remote_command"


def _size(n: Optional[int]) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


@app.command("list")
def list_sessions(as_json: bool = typer.Option(False, "--json", help="Print the sessions as JSON.")) -> None:
    """List the sessions colabssh has connected."""
    from ..console import out_console, status
    from ..paths import Paths
    from ..sessions import load_sessions

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
                      cell(s.tunnel + (" (password)" if s.auth == "password" else "")),
                      cell(s.gpu or "-"), cell(s.connected_at.replace("T", " ").rstrip("Z") or "-"))
    out_console().print(table)


@app.command()
def status(
    alias: Optional[str] = typer.Argument(None, help="The session (default: colab, or the only one)."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Ask the runtime over SSH: reachable, GPU, uptime, free disk, size of the content root."""
    from ..console import result
    from ..errors import UNREACHABLE, ColabsshError
    from ..remote import Remote
    from ..status import runtime_status

    report = runtime_status(Remote.for_alias(alias))
    if as_json:
        sys.stdout.write(json.dumps(report.as_json(), indent=2) + "\n")
    elif report.reachable:
        result(f"{report.alias}: reachable ({report.address})")
        gpu = report.gpu or "none"
        if report.gpu and report.gpu_memory_total_mib:
            gpu += f" ({report.gpu_memory_used_mib} of {report.gpu_memory_total_mib} MiB used)"
        result(f"  GPU      {gpu}")
        result(f"  uptime   {_duration(report.uptime_seconds)}")
        result(f"  disk     {_size(report.disk_free_bytes)} free of {_size(report.disk_total_bytes)}")
        result(f"  {report.content:<8} {_size(report.content_bytes)}")
    else:
        result(f"{report.alias}: unreachable ({report.address})")
    if not report.reachable:  # after the report: the boundary in app.py says why, with its hint
        raise ColabsshError(report.error, report.hint, UNREACHABLE)


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
    from ..remote import Remote, explain_ssh_failure

    remote = Remote.for_alias(alias)
    command: list[Any] = ctx.meta.get(REMOTE_COMMAND, [])
    code = remote.interactive(command)
    if code == 255:  # ssh itself failed (it said why on the terminal): advice, and ssh's own exit code
        advice = explain_ssh_failure(remote.alias, 255, "")
        raise ColabsshError(advice.message, advice.hint, 255)
    raise typer.Exit(code)
