"""A full backup keeps the home's editor-server folders on Drive (colabssh/home) as one archive per unit (a server
build, an extension, data/ ...), without logs, sockets, pid, lock and token files or caches, rewriting only the
units that changed; a backup of some paths leaves them alone. Real tar and rsync on temp trees."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from colab_bootstrap import comeback
from colab_bootstrap.drive_layout import HOME_FOLDER
from colab_bootstrap.sync import editor_archives
from colab_bootstrap.sync.periodic import describe, start_periodic
from colab_bootstrap.sync.request import Request
from colab_bootstrap.sync.runs import start
from tests.runtime.sync.editor_tree import COMMIT, EXECUTABLE, KEPT, LEFT_OUT, files_under, make_editor_folder
from tests.shipped import PAYLOAD, boot_argv

PYTHON_EXT = "extensions/ms-python.python-2024.8.0"
UNITS = {f"bin/{COMMIT}", f"cli/servers/Stable-{COMMIT}", "cli/servers/lru.json", f"code-{COMMIT}", "data",
         "extensions/extensions.json", PYTHON_EXT, "extensions/ms-python.vscode-pylance-2024.6.1"}


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


def kept_folder(tree: dict[str, Path]) -> Path:
    return tree["drive"] / HOME_FOLDER / ".vscode-server"


def index_of(tree: dict[str, Path]) -> dict[str, dict]:
    return json.loads((kept_folder(tree) / "index.json").read_text())["units"]


def archives(tree: dict[str, Path]) -> dict[str, tuple[int, int]]:
    """Each archive on Drive: (inode, mtime_ns), to tell a rewritten one from one left alone."""
    return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns)
            for path in (kept_folder(tree) / "archives").iterdir()}


def restored(tree: dict[str, Path], home: Path) -> Path:
    home.mkdir()
    said: list[str] = []
    with comeback.runner_lock(tree["state"]) as lock_fd:
        comeback.restore_editor(".vscode-server", home, tree["drive"], lock_fd, said.append)
    assert said[-1].startswith(f"colabssh: restored VS Code server ({home / '.vscode-server'}) from Drive: "
                               "11 files, "), said
    return home / ".vscode-server"


def test_a_full_backup_keeps_the_editor_folder_as_an_archive_per_unit(tree: dict[str, Path], tmp_path: Path) -> None:
    result = run(tree)
    kept = kept_folder(tree)
    assert sorted(os.listdir(kept)) == ["archives", "index.json"]
    units = index_of(tree)
    assert set(units) == UNITS  # each server build, extension and other entry on its own
    assert sorted(os.listdir(kept / "archives")) == sorted(entry["archive"][len("archives/"):]
                                                           for entry in units.values())
    unpacked = tmp_path / "unpacked"
    for entry in units.values():
        with tarfile.open(kept / entry["archive"]) as archive:
            archive.extractall(unpacked, filter="tar")
    assert files_under(unpacked) == set(KEPT) | set(EXECUTABLE)  # no logs, pid/lock/token, caches, socket, FIFO
    assert all(os.access(unpacked / rel, os.X_OK) for rel in EXECUTABLE)  # the archive keeps the modes
    assert not os.access(unpacked / KEPT[0], os.X_OK)
    assert (tree["drive"] / "colabssh/content/notes.txt").read_text() == "mine\n"
    editors = result["editors"]
    assert editors["names"] == [".vscode-server"] and editors["exit"] == 0 and editors["deleted"] == 0
    assert editors["files"] == len(KEPT) + len(EXECUTABLE) and editors["files_copied"] == editors["files"]
    assert editors["bytes"] == sum(len(f"{rel}\n") for rel in KEPT + EXECUTABLE) == editors["bytes_copied"]
    assert not (tree["drive"] / HOME_FOLDER / ".colabssh-tmp").exists()
    assert "VS Code server: 11 files kept on Drive" in describe({**result, "notes": []})


def test_the_folder_comes_back_whole_and_an_unchanged_sync_rewrites_nothing(tree: dict[str, Path],
                                                                             tmp_path: Path) -> None:
    run(tree)
    before, index_before = archives(tree), (kept_folder(tree) / "index.json").stat().st_mtime_ns
    store = tree["drive"] / HOME_FOLDER
    store_before = store.stat().st_mtime_ns  # its temp folder comes and goes: the store keeps its time
    second = run(tree)
    assert archives(tree) == before and (kept_folder(tree) / "index.json").stat().st_mtime_ns == index_before
    assert store.stat().st_mtime_ns == store_before and not (store / ".colabssh-tmp").exists()
    assert second["editors"]["files_copied"] == 0 and second["editors"]["files"] == 11
    server = restored(tree, tmp_path / "new-home")
    assert files_under(server) == set(KEPT) | set(EXECUTABLE)
    assert all(os.access(server / rel, os.X_OK) for rel in EXECUTABLE)
    assert (server / f"bin/{COMMIT}/node").read_text() == f"bin/{COMMIT}/node\n"
    # the restored folder has the same fingerprints (mtimes to the nanosecond): its first backup writes nothing
    third = run({**tree, "home": tmp_path / "new-home"})
    assert archives(tree) == before and third["editors"]["files_copied"] == 0


def test_a_changed_extension_rewrites_only_its_archive_and_a_removed_one_is_deleted(tree: dict[str, Path]) -> None:
    run(tree)
    before, units = archives(tree), index_of(tree)
    (tree["home"] / ".vscode-server" / PYTHON_EXT / "package.json").write_text('{"version": "2"}\n')
    shutil.rmtree(tree["home"] / ".vscode-server/extensions/ms-python.vscode-pylance-2024.6.1")
    second = run(tree)["editors"]
    after, new_units = archives(tree), index_of(tree)
    assert set(new_units) == UNITS - {"extensions/ms-python.vscode-pylance-2024.6.1"}
    rewritten = {name for name in after if before.get(name) != after[name]}
    assert rewritten == {new_units[PYTHON_EXT]["archive"][len("archives/"):]}
    assert set(before) - set(after) == {units[unit]["archive"][len("archives/"):]
                                        for unit in (PYTHON_EXT, "extensions/ms-python.vscode-pylance-2024.6.1")}
    assert second["files_copied"] == 1 and second["deleted"] == 2 and second["files"] == 10


def test_a_kill_between_the_archive_and_the_index_leaves_a_restorable_drive(tree: dict[str, Path], tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    run(tree)
    old_archive = index_of(tree)[PYTHON_EXT]["archive"]
    (tree["home"] / ".vscode-server" / PYTHON_EXT / "package.json").write_text('{"version": "2"}\n')

    def killed(path: Path, text: str) -> None:  # the worker dies after the archive, before the index
        os.kill(os.getpid(), signal.SIGKILL)

    with monkeypatch.context() as patch:
        patch.setattr(editor_archives, "write_text", killed)
        events: list[dict] = []
        start(Request(mode="backup", content=tree["content"], drive=tree["drive"], home=tree["home"]),
              tree["state"], emit=events.append)
    assert events[-1]["lost"], events[-1]
    orphan = set(archives(tree)) - {entry["archive"][len("archives/"):] for entry in index_of(tree).values()}
    assert len(orphan) == 1  # the new archive, complete, that no index names yet
    server = restored(tree, tmp_path / "new-home")  # the old index still names complete archives
    assert (server / PYTHON_EXT / "package.json").read_text() == f"{PYTHON_EXT}/package.json\n"
    left = archives(tree)
    again = run(tree)["editors"]  # the next sync takes the orphan as it is and drops the old archive
    assert index_of(tree)[PYTHON_EXT]["archive"] == f"archives/{orphan.pop()}"
    assert archives(tree) == {name: ids for name, ids in left.items() if f"archives/{name}" != old_archive}
    assert again["files_copied"] == 0 and again["deleted"] == 1


def test_a_unit_that_changes_as_it_is_read_keeps_its_last_archive(tree: dict[str, Path], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    run(tree)
    old = index_of(tree)[PYTHON_EXT]
    (tree["home"] / ".vscode-server" / PYTHON_EXT / "package.json").write_text('{"version": "2"}\n')
    standins = tmp_path / "bin"
    standins.mkdir()
    warns = standins / "tar"  # GNU tar as it ends when a running server writes into the unit meanwhile
    warns.write_text(f"#!/bin/sh\n{shutil.which('tar')} \"$@\" || exit $?\ncase \"$*\" in *--create*)\n"
                     "  echo \"tar: extensions/x/package.json: file changed as we read it\" >&2; exit 1;; esac\n")
    warns.chmod(0o755)
    monkeypatch.setenv("PATH", f"{standins}:{os.environ['PATH']}")
    result = run(tree)  # the content's backup went well: the sync succeeds, its editor line says what happened
    editors = result["editors"]
    assert editors["exit"] == 24 and index_of(tree)[PYTHON_EXT] == old
    assert (kept_folder(tree) / old["archive"]).is_file()
    assert editors["messages"] == [f".vscode-server/{PYTHON_EXT} changed while it was read (a running server): "
                                   "its archive on Drive is the last complete one; the next sync writes it"]
    assert len(archives(tree)) == len(UNITS) and not (tree["drive"] / HOME_FOLDER / ".colabssh-tmp").exists()


def test_an_old_file_for_file_copy_is_removed_by_the_first_backup(tree: dict[str, Path]) -> None:
    old = kept_folder(tree) / f"bin/{COMMIT}/node"
    old.parent.mkdir(parents=True)
    old.write_text("the copy of an earlier version\n")
    (tree["drive"] / HOME_FOLDER / ".vscode-server.executables").write_text(f".vscode-server/bin/{COMMIT}/node\n")
    run(tree)
    assert sorted(os.listdir(tree["drive"] / HOME_FOLDER)) == [".vscode-server"]
    assert sorted(os.listdir(kept_folder(tree))) == ["archives", "index.json"]


def test_a_sync_of_some_paths_and_a_dry_run_leave_drive_alone(tree: dict[str, Path]) -> None:
    result = run(tree, paths=["notes.txt"])
    assert result["editors"] is None and not (tree["drive"] / HOME_FOLDER).exists()
    dry = run(tree, dry_run=True)
    assert not (tree["drive"] / HOME_FOLDER / ".vscode-server").exists()
    assert dry["editors"]["files_copied"] == len(KEPT) + len(EXECUTABLE)  # what it would write
    run(tree)
    before = archives(tree)
    (tree["home"] / ".vscode-server" / PYTHON_EXT / "package.json").write_text('{"version": "2"}\n')
    dry = run(tree, dry_run=True)["editors"]
    assert (dry["files_copied"], dry["deleted"]) == (1, 1) and archives(tree) == before


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
    assert events[-1]["editors"]["names"] == [".vscode-server"] and events[-1]["editors"]["files"] == 11
    assert set(index_of(tree)) == UNITS


def test_the_periodic_sync_carries_the_editor_folders(tree: dict[str, Path], tmp_path: Path) -> None:
    said: queue.Queue[str] = queue.Queue()
    start_periodic(tree["content"], tree["drive"], tree["state"], 1, said.put, home=tree["home"])
    try:
        deadline = time.monotonic() + 30
        line = ""
        while "periodic sync:" not in line:
            line = said.get(timeout=max(deadline - time.monotonic(), 0.1))
        assert "VS Code server: 11 files kept on Drive" in line, line
    finally:
        start_periodic(tree["content"], tree["drive"], tree["state"], 0, lambda text: None)
    server = restored(tree, tmp_path / "new-home")
    assert files_under(server) == set(KEPT) | set(EXECUTABLE)
    assert not any((server / rel).exists() for rel in LEFT_OUT)


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


def test_a_link_where_a_folder_s_archives_go_is_refused_and_its_target_untouched(tree: dict[str, Path],
                                                                                 tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tree["drive"] / HOME_FOLDER).mkdir(parents=True)
    kept_folder(tree).symlink_to(elsewhere)
    events: list[dict] = []
    code = start(Request(mode="backup", content=tree["content"], drive=tree["drive"], home=tree["home"]),
                 tree["state"], emit=events.append)
    editors = events[-1]["editors"]  # the content root's backup is done; the editor step says what is wrong
    assert code == events[-1]["exit"] == 11 and (tree["drive"] / "colabssh/content/notes.txt").is_file()
    assert editors["exit"] == 11 and editors["messages"] == [
        f".vscode-server: {kept_folder(tree)} is a symbolic link, not a folder (move it away)"]
    assert os.listdir(elsewhere) == []
