"""Opening the editor: an argv list, the exact folder URI, and advice (never an error) when it cannot open."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from colabssh_cli.app import main
from colabssh_cli.editor import folder_uri, open_editor
from tests.cli.connection.test_flow_e2e import calls, close_masters_after, code_cli  # noqa: F401  (fixtures)


def test_the_folder_uri_is_percent_encoded() -> None:
    assert folder_uri("colab", "/content") == "vscode-remote://ssh-remote+colab/content"
    assert folder_uri("gpu-2", "/content/my work/#1") == "vscode-remote://ssh-remote+gpu-2/content/my%20work/%231"


def test_code_with_remote_ssh_opens_the_folder(code_cli: Path) -> None:  # noqa: F811
    lines: list[str] = []
    outcome = open_editor("code", "colab", "/content", lines.append)
    assert outcome.launched
    assert [c["argv"] for c in calls(code_cli)] == [["--list-extensions"],
                                                    ["--folder-uri", "vscode-remote://ssh-remote+colab/content"]]
    assert Path(outcome.argv[0]).name == "code" and os.path.isabs(outcome.argv[0])


def test_cursor_and_its_own_remote_ssh(code_cli: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("FAKE_CODE_EXTENSIONS", "anysphere.remote-ssh,ms-python.python")
    outcome = open_editor("cursor", "colab", "/content", lambda line: None)
    assert outcome.launched
    assert calls(code_cli)[-1] == {"prog": "cursor", "argv": ["--folder-uri", "vscode-remote://ssh-remote+colab/content"]}
    assert outcome.link == "cursor://vscode-remote/ssh-remote+colab/content"


def test_codium_without_open_remote_ssh_says_how_to_install_it(code_cli: Path,  # noqa: F811
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CODE_EXTENSIONS", "ms-vscode-remote.remote-ssh")  # Microsoft's does not run in VSCodium
    outcome = open_editor("codium", "colab", "/content", lambda line: None)
    assert not outcome.launched
    assert "  codium --install-extension jeanp413.open-remote-ssh" in outcome.notes
    assert [c["argv"] for c in calls(code_cli)] == [["--list-extensions"]]  # no window that cannot connect


def test_an_editor_that_cannot_list_extensions_is_still_opened(code_cli: Path,  # noqa: F811
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CODE_LIST_FAILS", "1")
    assert open_editor("code", "colab", "/content", lambda line: None).launched
    assert calls(code_cli)[-1]["argv"][0] == "--folder-uri"


def test_an_editor_that_fails_to_open_gives_the_link(code_cli: Path,  # noqa: F811
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CODE_FAIL", "1")
    outcome = open_editor("code", "colab", "/content", lambda line: None)
    assert not outcome.launched
    assert any("Missing X server" in note for note in outcome.notes)
    assert "  or the link vscode://vscode-remote/ssh-remote+colab/content" in outcome.notes


def test_a_missing_editor_cli_prints_the_command_and_the_link_and_connect_succeeds(
        runtime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p and not (Path(p) / "code").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(path))
    assert main(["connect", runtime.code]) == 0
    out = capsys.readouterr().out
    content = runtime.info.content
    assert f"  code --folder-uri vscode-remote://ssh-remote+colab{content}" in out
    assert f"  or the link vscode://vscode-remote/ssh-remote+colab{content}" in out
