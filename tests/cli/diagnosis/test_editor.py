"""`colabssh doctor`'s checks of the editor CLIs and their Remote-SSH extension."""

from __future__ import annotations

import os
from pathlib import Path

from colabssh_cli.diagnosis import OK, WARN
from tests.cli.connection.test_flow_e2e import close_masters_after, code_cli  # noqa: F401  (fixtures)

from . import assert_fixable, doctor


def test_an_editor_that_cannot_list_its_extensions_is_not_blamed(code_cli, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setenv("FAKE_CODE_LIST_FAILS", "1")
    code, checks, _ = doctor(capsys)
    assert code == 0
    assert checks["editor code"]["status"] == OK and "not checked" in checks["editor code"]["detail"]


def test_no_editor_on_path_is_a_warning(capsys, monkeypatch):
    editors = ("code", "cursor", "codium")
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                               if not any((Path(p) / name).exists() for name in editors)))
    code, checks, _ = doctor(capsys)
    assert code == 0
    assert_fixable(checks["editor"], WARN, "no editor CLI on PATH", "Install code command in PATH")
