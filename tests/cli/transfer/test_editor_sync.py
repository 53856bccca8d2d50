"""`colabssh sync` from the laptop, through the real sshd: a full sync keeps the runtime's editor-server folder on
Drive (as archives) and says so in one line, a second one writes nothing again; a sync of some paths leaves it
alone. The runtime's home reaches the runner through the session's environment (COLABSSH_HOME)."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from colabssh_cli.app import main
from tests.cellrunner import RunningCell
from tests.runtime.sync.editor_tree import EXECUTABLE, KEPT, files_under, make_editor_folder


@pytest.fixture
def connected_home(start_runtime: Callable[..., RunningCell], tmp_path: Path) -> Iterator[tuple[RunningCell, Path]]:
    from colabssh_cli.paths import Paths
    from colabssh_cli.remote.runner import close_shared_connection

    home = tmp_path / "runtime-home"
    make_editor_folder(home)
    running = start_runtime(extra_env={"COLABSSH_HOME": str(home)})
    (running.content / "notes.txt").write_text("mine\n")
    assert main(["connect", running.code, "--no-open"]) == 0
    yield running, home
    close_shared_connection(Paths.from_env(), "colab")


def test_a_full_sync_keeps_the_editor_folder_and_a_partial_one_does_not(connected_home, capsys) -> None:  # noqa: ANN001
    running, _home = connected_home
    kept = running.drive / "colabssh/home/.vscode-server"
    capsys.readouterr()
    assert main(["sync", "notes.txt"]) == 0
    assert not kept.exists() and "VS Code server" not in capsys.readouterr().out
    assert main(["sync", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: VS Code server: 1 folder (.vscode-server), 11 files" in out and not kept.exists()
    assert main(["sync"]) == 0
    out = capsys.readouterr().out
    assert "VS Code server: 1 folder (.vscode-server), 11 files" in out and "kept on Drive (11 files" in out
    unpacked = running.drive / "unpacked"
    for entry in json.loads((kept / "index.json").read_text())["units"].values():
        with tarfile.open(kept / entry["archive"]) as archive:
            archive.extractall(unpacked, filter="tar")
    assert files_under(unpacked) == set(KEPT) | set(EXECUTABLE)
    assert main(["sync"]) == 0
    assert "11 files, 526 B kept on Drive (0 files (0 B) copied now)" in capsys.readouterr().out
