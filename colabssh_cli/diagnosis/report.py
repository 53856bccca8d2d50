"""What `colabssh doctor` reports: one ``Check`` per row, gathered in a ``DoctorReport``.

A check is ok, warn (worth knowing, nothing broken), fail (colabssh, ssh or VS Code will not work) or skip
(does not apply); every fail and warn comes with its fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"

Report = Callable[[str], None]  # where a slow check says what it is doing ("doctor: ssh colab true ...")


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.status == FAIL]

    def count(self, status: str) -> int:
        return sum(1 for check in self.checks if check.status == status)

    def as_json(self) -> dict[str, Any]:
        return {"ok": not self.failed, "checks": [asdict(check) for check in self.checks]}
