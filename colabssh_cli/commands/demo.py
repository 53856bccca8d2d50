"""`colabssh demo`: a PyTorch tensor/autograd demo on the runtime's GPU, shown as a table of checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

from ..app import app

if TYPE_CHECKING:
    from ..demo_client import DemoReport

_STYLES = {"passed": "green", "failed": "bold red", "skipped": "yellow"}


@app.command()
def demo(
    gpu: bool = typer.Option(False, "--gpu", help="Demand a CUDA GPU: fail at once if the runtime has none."),
    as_json: bool = typer.Option(False, "--json", help="Print the demo's JSON document and nothing else on stdout."),
    name: Optional[str] = typer.Option(None, "--name", "-n", metavar="ALIAS",
                                       help="The session to use (default: 'colab', or the only one)."),
) -> None:
    """Run a tensor/autograd demo on the runtime (its GPU when there is one) and show each check.

    Exits 0 only when no check failed. Without --gpu it uses CUDA when present, else the CPU.
    """
    import json
    import sys

    from ..console import status
    from ..demo_client import DemoUnavailable, run_demo
    from ..errors import FAILURE, ColabsshError
    from ..remote.runner import Remote

    remote = Remote.for_alias(name)
    status(f"{remote.alias}: running the demo on the runtime{' (GPU required)' if gpu else ''}...")
    try:
        report = run_demo(remote, gpu=gpu, on_progress=status)
    except DemoUnavailable as exc:
        if as_json:
            sys.stdout.write(json.dumps(exc.document) + "\n")
        raise
    if as_json:
        sys.stdout.write(json.dumps(report.document) + "\n")
        sys.stdout.flush()
    else:
        _render(report)
    if report.failed:
        names = ", ".join(check.name for check in report.failed)
        raise ColabsshError(f"{len(report.failed)} demo check{'s' if len(report.failed) > 1 else ''} failed: {names}",
                            "each failed check's line above says what did not hold", FAILURE)


def _render(report: DemoReport) -> None:
    from rich.table import Table

    from ..console import cell, out_console

    where = report.figures.get("gpu") or report.device
    table = Table(title=cell(f"colabssh demo: torch {report.torch} on {where}"), title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail")
    for check in report.checks:  # all of it came from the runtime: plain text
        table.add_row(cell(check.name), cell(check.status, _STYLES.get(check.status, "")), cell(check.detail))
    console = out_console()
    console.print(table)
    console.print(f"{report.count('passed')} passed, {report.count('failed')} failed, "
                  f"{report.count('skipped')} skipped", markup=False, highlight=False)
