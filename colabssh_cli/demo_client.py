"""The laptop side of `colabssh demo`: run colab_bootstrap.demo on the runtime, read its report.

The demo runs with the runtime's python (the one that ran the cell, from the connection code)
over the remote seam, its code cached on the runtime or sent (``shipping.run_module``); its
progress lines (stderr) are handed on as they come, and its stdout is one JSON document: the report,
or ``{"error", "message", "hint"}`` when it could not run at all. This module knows no typer or rich;
commands/demo.py renders what it returns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from colab_bootstrap import demo as runtime_demo

from .errors import FAILURE, INTERRUPTED, MISSING_TOOL, ColabsshError
from .remote.advice import is_host_key_banner
from .remote.runner import NOT_STARTED, STOPPED, Remote, RemoteInterrupted
from .remote.shipping import run_module

STATUSES = (runtime_demo.PASSED, runtime_demo.FAILED, runtime_demo.SKIPPED)

DEMO_MODULE = "colab_bootstrap.demo"  # run on the runtime through colabssh_cli.remote.shipping
_OWN_ERROR_LINES = ("demo: error: ", "  hint: ")

# The runtime's "could not run" kinds, as laptop exit codes.
_ERROR_EXIT_CODES = {"no-torch": MISSING_TOOL, "no-cuda": FAILURE}


@dataclass(frozen=True)
class DemoCheck:
    name: str
    status: str  # passed | failed | skipped
    detail: str


@dataclass(frozen=True)
class DemoReport:
    device: str
    torch: str
    checks: tuple[DemoCheck, ...]
    figures: dict[str, Any]
    document: dict[str, Any] = field(repr=False)  # the JSON document as the runtime printed it

    @property
    def failed(self) -> list[DemoCheck]:
        return [check for check in self.checks if check.status == runtime_demo.FAILED]

    def count(self, status: str) -> int:
        return sum(1 for check in self.checks if check.status == status)


class DemoUnavailable(ColabsshError):
    """The demo could not run at all (no torch, no CUDA with --gpu); carries the runtime's JSON document."""

    def __init__(self, message: str, hint: str, exit_code: int, document: dict[str, Any]) -> None:
        super().__init__(message, hint, exit_code)
        self.document = document


def interrupted(state: str) -> ColabsshError:
    """Ctrl-C during the demo (exit 130): what became of it on the runtime, from RemoteInterrupted's STATE."""
    if state == STOPPED:
        return ColabsshError("interrupted: the demo was stopped; nothing of it is left running on the runtime", "",
                             INTERRUPTED)
    if state == NOT_STARTED:
        return ColabsshError("interrupted before the demo started on the runtime; nothing of it runs there", "",
                             INTERRUPTED)
    return ColabsshError("interrupted: the demo was stopped here, but the runtime did not confirm that it ended "
                         "there", "if it still runs, `colabssh ssh -- pkill -f colab_bootstrap.demo` ends it; "
                         "it also ends by itself at its next step, once the runtime sees the connection gone",
                         INTERRUPTED)


def demo_arguments(gpu: bool) -> list[str]:
    return ["--json", *(["--gpu"] if gpu else [])]


def parse_report(stdout: str, returncode: int, alias: str, stderr_tail: list[str] | None = None) -> DemoReport:
    """Read the one JSON document the demo printed; refuse anything else with a clear message."""
    last_words = next((line.strip() for line in reversed(stderr_tail or []) if line.strip()), "")
    try:
        document = json.loads(stdout)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ColabsshError(f"{alias}: the demo gave no report (exit code {returncode})"
                            + (f": {last_words}" if last_words else ""),
                            "is the runtime's python 3.10 or newer? Run `colabssh demo` again; if it persists, "
                            "run the cell again", FAILURE)
    if "error" in document:
        kind = str(document.get("error"))
        message = str(document.get("message") or kind)
        hint = str(document.get("hint") or "")
        raise DemoUnavailable(message, hint, _ERROR_EXIT_CODES.get(kind, FAILURE), document)
    try:
        checks = tuple(DemoCheck(str(c["name"]), str(c["status"]), str(c["detail"])) for c in document["checks"])
        report = DemoReport(device=str(document["device"]), torch=str(document["torch"]), checks=checks,
                            figures=dict(document.get("figures") or {}), document=document)
    except (KeyError, TypeError, ValueError):
        raise ColabsshError(f"{alias}: the demo's report is not in the expected form",
                            "this colabssh and the demo it shipped disagree; reinstall colabssh", FAILURE) from None
    unknown = sorted({check.status for check in checks} - set(STATUSES))
    if unknown:
        raise ColabsshError(f"{alias}: the demo reported unknown statuses ({', '.join(unknown)})", "", FAILURE)
    return report


def run_demo(remote: Remote, *, gpu: bool = False,
             on_progress: Callable[[str], None] | None = None) -> DemoReport:
    """Run the demo on REMOTE's runtime; progress lines go to ON_PROGRESS as they arrive. Ctrl-C stops it there
    too, and raises a ColabsshError (exit 130) saying so (``interrupted``)."""
    stdout: list[str] = []
    stderr_tail: list[str] = []

    def progress(line: str) -> None:
        line = line.rstrip("\r")  # ssh's own lines end in CR LF
        stderr_tail.append(line)
        del stderr_tail[:-20]
        # the demo's own error lines are said again, once, by colabssh's error boundary, and so is a host key
        # that is not the pinned one (in colabssh's words, not OpenSSH's banner)
        if on_progress is not None and not line.startswith(_OWN_ERROR_LINES) and not is_host_key_banner(line):
            on_progress(line)

    try:
        returncode = run_module(remote, DEMO_MODULE, demo_arguments(gpu), on_stdout=stdout.append,
                                on_stderr=progress, site=True,  # site: torch lives in site-packages
                                stop_on_interrupt=True)
    except RemoteInterrupted as stop:
        raise interrupted(stop.state) from None
    return parse_report("\n".join(stdout), returncode, remote.alias, stderr_tail)
