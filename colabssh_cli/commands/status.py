"""`colabssh status`: ask a session's runtime over SSH how it is (once, or live with --watch)."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from ..app import app


@app.command()
def status(
    alias: Optional[str] = typer.Argument(None, help="The session (default: colab, or the only one)."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON (with --watch: one line each)."),
    watch: bool = typer.Option(False, "--watch", "-w",
                               help="Keep showing it, live, over one connection, until Ctrl-C."),
    every: Optional[float] = typer.Option(None, "--every", metavar="SECONDS",
                                          help="With --watch: seconds between reports (default 2)."),
) -> None:
    """Ask the runtime over SSH: reachable, GPU at work, how long the cell has served, RAM, disk, content, sync."""
    from ..console import result
    from ..errors import BAD_INPUT, UNREACHABLE, ColabsshError
    from ..remote.runner import Remote
    from .status_view import EVERY_DEFAULT, check_every, headline, report_lines

    if every is not None and not watch:
        raise ColabsshError("--every goes with --watch", "e.g. `colabssh status --watch --every 5`", BAD_INPUT)
    seconds = check_every(EVERY_DEFAULT if every is None else every)
    remote = Remote.for_alias(alias)
    if watch:
        from .status_view import watch as watch_live

        watch_live(remote, seconds, as_json)
        return
    from ..runtime_status import runtime_status

    report = runtime_status(remote)
    if as_json:
        sys.stdout.write(json.dumps(report.as_json(), indent=2) + "\n")
    else:
        result(headline(report))
        for line in report_lines(report) if report.reachable else ():
            result(line)
    if not report.reachable:  # after the report: the boundary in app.py says why, with its hint
        raise ColabsshError(report.error, report.hint, UNREACHABLE)
