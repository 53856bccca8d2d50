"""Running one check: whatever happens becomes ``passed``, ``failed`` or ``skipped`` with a one-line detail;
and the plain-text table of a report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


Say = Callable[[str], None]


class CheckFailed(Exception):
    """A check's property does not hold; the message says which, in one line."""


class Skipped(Exception):
    """A check that does not apply here (a GPU-only check on the CPU)."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str
    detail: str


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def require(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def run_check(name: str, check: Callable[..., str], *args: Any, **kwargs: Any) -> CheckResult:
    """Run one check; whatever happens becomes passed/failed/skipped with a one-line detail."""
    try:
        detail = check(*args, **kwargs)
    except Skipped as exc:
        return CheckResult(name, SKIPPED, one_line(str(exc)))
    except CheckFailed as exc:
        return CheckResult(name, FAILED, one_line(str(exc)))
    except Exception as exc:  # any other exception is the check failing, said in one line
        text = one_line(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        return CheckResult(name, FAILED, f"raised {type(exc).__name__}" + (f": {text}" if text else ""))
    return CheckResult(name, PASSED, one_line(detail))


def failed_checks(report: dict[str, Any]) -> list[str]:
    return [check["name"] for check in report["checks"] if check["status"] == FAILED]


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table of the checks (for a terminal or a notebook; colabssh draws its own)."""
    rows = [(check["name"], check["status"], check["detail"]) for check in report["checks"]]
    width = max(len(name) for name, _, _ in rows)
    lines = [f"torch {report['torch']} on {report['figures'].get('gpu') or report['device']}"]
    lines += [f"  {name:<{width}}  {status:<7}  {detail}" for name, status, detail in rows]
    counts = {status: sum(1 for _, s, _ in rows if s == status) for status in (PASSED, FAILED, SKIPPED)}
    lines.append(f"{counts[PASSED]} passed, {counts[FAILED]} failed, {counts[SKIPPED]} skipped")
    return "\n".join(lines)
