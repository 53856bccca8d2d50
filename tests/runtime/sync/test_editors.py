"""A full backup keeps the home's editor-server folders on Drive (colabssh/home), without logs, sockets, pid, lock
and token files or caches; a backup of some paths leaves them alone. Real rsync on temp trees."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from colab_bootstrap.drive_layout import HOME_FOLDER
from colab_bootstrap.sync.editors import MANIFEST_SUFFIX, mark_executables
from colab_bootstrap.sync.periodic import describe, start_periodic
from colab_bootstrap.sync.request import Request
from colab_bootstrap.sync.runs import start
from tests.runtime.sync.editor_tree import COMMIT, EXECUTABLE, KEPT, LEFT_OUT, files_under, make_editor_folder
from tests.shipped import PAYLOAD, boot_argv


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("content", "drive", "state", "runtime-home")}
    paths["home"] = paths.pop("runtime-home")
    for folder in paths.values():
        folder.mkdir()
    (paths["content"] / "notes.txt").write_text("mine\n")
    make_editor_folder(paths["home"])
    return paths


def run(tree: dict[str, Path], **options: object) -> dict:
    events: list[dict] = []
    request = Request(mode="backup", content=tree["content"], drive=tree["drive"], home=tree["home"],
                      **options)  # type: ignore[arg-type]
    code = start(request, tree["state"], emit=events.append)
    result = events[-1]
    assert result["event"] == "result" and code == result["exit"] == 0, events
    return result


def test_a_full_backup_keeps_the_editor_folder_without_what_the_server_rebuilds(tree: dict[str, Path]) -> None:
    result = run(tree)
    kept = tree["drive"] / HOME_FOLDER / ".vscode-server"
    assert files_under(kept) == set(KEPT) | set(EXECUTABLE)  # no logs, pid/lock/token, caches, socket, FIFO
    assert (tree["drive"] / "colabssh/content/notes.txt").read_text() == "mine\n"
    editors = result["editors"]
    assert editors["names"] == [".vscode-server"] and editors["exit"] == 0
    assert editors["files"] == len(KEPT) + len(EXECUTABLE) and editors["files_copied"] == editors["files"]
    manifest = (tree["drive"] / HOME_FOLDER / (".vscode-server" + MANIFEST_SUFFIX)).read_text().split()
    assert manifest == sorted(f".vscode-server/{rel}" for rel in EXECUTABLE)
    assert not (tree["drive"] / HOME_FOLDER / ".colabssh-tmp").exists() or \
        not any((tree["drive"] / HOME_FOLDER / ".colabssh-tmp").iterdir())
    assert "kept on Drive" in describe({**result, "notes": []})


def test_the_editor_folders_are_a_mirror_and_the_execute_bits_come_back(tree: dict[str, Path], tmp_path: Path) -> None:
    run(tree)
    shutil.rmtree(tree["home"] / ".vscode-server/extensions/ms-python.python-2024.8.0")
    second = run(tree)
    kept = tree["drive"] / HOME_FOLDER / ".vscode-server"
    assert not (kept / "extensions/ms-python.python-2024.8.0").exists()  # an uninstalled extension goes
    assert second["editors"]["files_copied"] == 0
    for rel in EXECUTABLE:  # Drive's mount keeps no execute bits: the manifest brings them back
        (kept / rel).chmod(0o600)
    staged = tmp_path / "staged"
    shutil.copytree(kept, staged / ".vscode-server")
    assert mark_executables(staged, tree["drive"] / HOME_FOLDER, ".vscode-server") == len(EXECUTABLE)
    assert all(os.access(staged / ".vscode-server" / rel, os.X_OK) for rel in EXECUTABLE)
    assert not os.access(staged / ".vscode-server" / KEPT[0], os.X_OK)


def test_a_manifest_line_that_leaves_the_folder_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "home/.vscode-server").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("x")
    victim.chmod(0o600)
    (tmp_path / "store" / (".vscode-server" + MANIFEST_SUFFIX)).write_text(
        ".vscode-server/../../victim\n/etc/passwd\n")
    assert mark_executables(tmp_path / "home", tmp_path / "store", ".vscode-server") == 0
    assert victim.stat().st_mode & 0o111 == 0


def test_a_sync_of_some_paths_and_a_dry_run_leave_drive_alone(tree: dict[str, Path]) -> None:
    result = run(tree, paths=["notes.txt"])
    assert result["editors"] is None and not (tree["drive"] / HOME_FOLDER).exists()
    dry = run(tree, dry_run=True)
    assert not (tree["drive"] / HOME_FOLDER / ".vscode-server").exists()
    assert dry["editors"]["files_copied"] == len(KEPT) + len(EXECUTABLE)  # what it would copy


def test_a_home_without_editor_folders_adds_nothing(tree: dict[str, Path]) -> None:
    shutil.rmtree(tree["home"] / ".vscode-server")
    (tree["home"] / ".cursor-server").symlink_to(tree["content"])  # a link is not the home's own folder
    assert run(tree)["editors"] is None and not (tree["drive"] / HOME_FOLDER).exists()


def test_the_runner_finds_the_home_in_the_session_environment(tree: dict[str, Path]) -> None:
    argv = boot_argv("start", "--state", str(tree["state"]), "--content", str(tree["content"]),
                     "--drive", str(tree["drive"]))
    done = subprocess.run(argv, input=PAYLOAD, capture_output=True, timeout=60,
                          env={**os.environ, "COLABSSH_HOME": str(tree["home"])})
    events = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert done.returncode == 0, events
    assert events[-1]["editors"]["names"] == [".vscode-server"]
    assert (tree["drive"] / HOME_FOLDER / f".vscode-server/bin/{COMMIT}/node").is_file()


def test_the_periodic_sync_carries_the_editor_folders(tree: dict[str, Path]) -> None:
    said: queue.Queue[str] = queue.Queue()
    start_periodic(tree["content"], tree["drive"], tree["state"], 1, said.put, home=tree["home"])
    try:
        deadline = time.monotonic() + 30
        line = ""
        while "periodic sync:" not in line:
            line = said.get(timeout=max(deadline - time.monotonic(), 0.1))
        assert "VS Code server: 11 file(s) kept on Drive" in line, line
        assert files_under(tree["drive"] / HOME_FOLDER / ".vscode-server") == set(KEPT) | set(EXECUTABLE)
        assert not any((tree["drive"] / HOME_FOLDER / ".vscode-server" / rel).exists() for rel in LEFT_OUT)
    finally:
        start_periodic(tree["content"], tree["drive"], tree["state"], 0, lambda text: None)


def test_a_file_where_the_editor_folders_go_is_refused_before_anything_is_copied(tree: dict[str, Path]) -> None:
    (tree["drive"] / "colabssh").mkdir()
    (tree["drive"] / HOME_FOLDER).write_text("not a folder\n")
    events: list[dict] = []
    code = start(Request(mode="backup", content=tree["content"], drive=tree["drive"], home=tree["home"]),
                 tree["state"], emit=events.append)
    assert code != 0 and events[-1]["event"] == "error"
    assert events[-1]["message"] == f"{tree['drive'] / HOME_FOLDER} is a file, not a folder: colabssh " \
                                    "keeps the editor servers' folders there"
    assert not (tree["drive"] / "colabssh/content").exists()
