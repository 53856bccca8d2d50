"""`colabssh doctor`: check this machine's side of colabssh; every failed check comes with its fix.

The checks, in order: OpenSSH's client and its version; colabssh's key and its modes; the marker block,
its Include line and the file modes ssh insists on in ``~/.ssh/config``; the session list (``local``); for each
session what ``ssh -G ALIAS`` makes of the config (colabssh's values must win), the program its
ProxyCommand runs (cloudflared, Google's `colab`) when it has one, and whether the runtime answers
(``ssh -o ConnectTimeout=N ALIAS true`` through the remote seam) (``sessions``); last the editor CLIs and their
Remote-SSH extension, when they can tell (``editor``). A check is ok, warn (worth knowing, nothing broken), fail
(colabssh, ssh or VS Code will not work) or skip (does not apply) (``report``). No typer, no rich here:
commands/doctor.py renders the report.
"""

from __future__ import annotations

from typing import Optional

from ..paths import Paths
from .editor import editor_checks
from .local import (
    agreement_checks,
    config_check,
    judge_ssh_version,
    key_check,
    plain_ssh_check,
    sessions_check,
    ssh_client_check,
)
from .report import FAIL, OK, SKIP, WARN, Check, DoctorReport, Report
from .sessions import proxy_check, session_checks

__all__ = ["FAIL", "OK", "SKIP", "WARN", "Check", "DoctorReport", "Report", "judge_ssh_version", "proxy_check",
           "run_doctor"]


def run_doctor(paths: Optional[Paths] = None, report: Report = lambda line: None) -> DoctorReport:
    paths = paths or Paths.from_env()
    doctor = DoctorReport()
    client, ssh = ssh_client_check()
    doctor.checks.append(client)
    doctor.checks += agreement_checks(paths)
    listed, sessions = sessions_check(paths)
    doctor.checks += [key_check(paths, sessions), config_check(paths, sessions), listed]
    if sessions:
        doctor.checks.append(plain_ssh_check(paths, sessions))
    for session in sessions.values():
        doctor.checks += session_checks(paths, session, ssh, report)
    doctor.checks += editor_checks()
    return doctor
