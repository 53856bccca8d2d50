"""`colabssh doctor`: a thin typer layer over colabssh_cli/doctor.py (a table on stdout, or JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from ..app import app

if TYPE_CHECKING:
    from ..doctor import DoctorReport

_STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


@app.command()
def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print the checks as one JSON document and nothing else on "
                                 "stdout."),
) -> None:
    """Check this machine's side: ssh, colabssh's key, ~/.ssh/config, each session (ssh -G, reachable), the editor.

    Every failed check says how to fix it. Exits 1 when a check failed (warnings do not count).
    """
    import json
    import sys

    from ..console import status
    from ..doctor import run_doctor
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
    from rich.text import Text

    from ..console import out_console

    table = Table(title="colabssh doctor", title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail")
    for check in report.checks:
        detail = Text(check.detail)
        if check.fix:
            detail.append(f"\nfix: {check.fix}", style="bold")
        table.add_row(check.name, Text(check.status, style=_STYLES.get(check.status, "")), detail)
    console = out_console()
    console.print(table)
    console.print(f"{report.count('ok')} ok, {report.count('warn')} warning(s), {report.count('fail')} failed, "
                  f"{report.count('skip')} skipped", markup=False, highlight=False)
