"""`colabssh doctor`'s tests, one file per module of colabssh_cli/diagnosis/; each check against the real thing
(OpenSSH's ssh -G and login, the printed cell's sshd), with stand-ins only for the editor CLI and cloudflared."""

from __future__ import annotations

import json

import pytest

from colabssh_cli.app import main
from colabssh_cli.diagnosis import FAIL


def doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict[str, str]], str]:
    """Run `colabssh doctor --json`; (exit code, the checks by name, stderr)."""
    capsys.readouterr()
    code = main(["doctor", "--json"])
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    checks = {check["name"]: check for check in document["checks"]}
    assert document["ok"] == (code == 0) == all(c["status"] != FAIL for c in checks.values())
    return code, checks, captured.err


def assert_fixable(check: dict[str, str], status: str, *words: str) -> None:
    assert check["status"] == status, check
    assert check["fix"], check
    for word in words:
        assert word in check["detail"] + " " + check["fix"], (word, check)
