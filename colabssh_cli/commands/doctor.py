"""`colabssh doctor`: a thin typer layer over colabssh_cli/doctor.py (a table on stdout, or JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from ..app import app

if TYPE_CHECKING:
    from ..diagnosis import DoctorReport

_STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


@app.command()
def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print the checks as one JSON document and nothing else on "
                                 "stdout."),
) -> None:
    """Check this machine's side: ssh, colabssh's key, ~/.ssh/config, each session (ssh -G, reachable), the editor.

    Every failed check says how to fix it. Exits 1 when a check failed (warnings do not count). It first
    finishes what an interrupted connect or forget left and brings colabssh's files back into agreement
    (Host blocks, pinned keys, sessions), with a row for each thing it repaired; and it checks that plain
    ssh and VS Code read the ~/.ssh/config colabssh wrote.
    """
    import json
    import sys

    from ..console import status
    from ..diagnosis import run_doctor
    from ..errors import FAILURE, ColabsshError

    report = run_doctor(report=status)
    if as_json:
        sys.stdout.write(json.dumps(report.as_json(), indent=2) + "\n")
        sys.stdout.flush()
    else:
        _render(report)
    if report.failed:
        names = ", ".join(check.name for check in report.failed)
        raise ColabsshError(f"doctor found {len(report.failed)} problem{'s' if len(report.failed) > 1 else ''}: "
                            f"{names}", "each failed check says how to fix it (`fix` in the JSON)", FAILURE)


def _render(report: DoctorReport) -> None:
    from rich.table import Table

    from colab_bootstrap.units import count

    from ..console import cell, out_console, plain

    table = Table(title="colabssh doctor", title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail")
    for check in report.checks:  # details quote files, ssh and the runtime: plain text
        detail = cell(check.detail)
        if check.fix:
            detail.append(f"\nfix: {plain(check.fix)}", style="bold")
        table.add_row(cell(check.name), cell(check.status, _STYLES.get(check.status, "")), detail)
    console = out_console()
    console.print(table)
    console.print(f"{report.count('ok')} ok, {count(report.count('warn'), 'warning')}, {report.count('fail')} failed, "
                  f"{report.count('skip')} skipped", markup=False, highlight=False)
