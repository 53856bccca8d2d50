"""`colabssh status`: ask a session's runtime over SSH how it is."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from ..app import app


def _size(n: Optional[int]) -> str:
    from colab_bootstrap.units import human_size

    return "?" if n is None else human_size(n)


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


@app.command()
def status(
    alias: Optional[str] = typer.Argument(None, help="The session (default: colab, or the only one)."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Ask the runtime over SSH: reachable, GPU, uptime, free disk, size of the content root."""
    from ..console import result
    from ..errors import UNREACHABLE, ColabsshError
    from ..remote.runner import Remote
    from ..runtime_status import runtime_status

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
