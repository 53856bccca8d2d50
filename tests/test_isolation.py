"""The suite's own guarantees (tests/conftest.py): every test has a HOME of its own, whatever it does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def test_a_tests_own_monkeypatch_undo_keeps_the_temp_home(monkeypatch: pytest.MonkeyPatch,
                                                            isolated_home: Path) -> None:
    # a test that ends its patches early must not send what runs next (a runtime's cache, a key) to the real HOME
    monkeypatch.setenv("HOME", "/elsewhere")
    monkeypatch.undo()
    assert os.environ["HOME"] == str(isolated_home)
    assert os.environ["COLABSSH_OPENSSH_HOME"] == str(isolated_home) and os.environ["COLABSSH_PROFILE_D"] == ""
