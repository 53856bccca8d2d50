"""A recycled runtime comes back: the printed cell, started with an empty content root and a backup on the fake
Drive, restores /content and the editor folders before its connect line; user files and existing folders are
never overwritten; restore off skips it; a broken restore warns and the cell goes on."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from colab_bootstrap import comeback
from colab_bootstrap.drive_layout import CONTENT_FOLDER, HOME_FOLDER
from colab_bootstrap.sync import editor_archives, worker
from colab_bootstrap.sync.editors import tar_path
from colab_bootstrap.sync.jobs import Jobs
from tests.cellrunner import CONNECT_PREFIX, RunningCell
from tests.runtime.sync.editor_tree import EXECUTABLE, KEPT, files_under, make_editor_folder

StartRuntime = Callable[..., RunningCell]


@pytest.fixture
def recycled(tmp_path: Path) -> dict[str, Path]:
    """What runtime A left on Drive (a /content backup, a VS Code server folder's archives, each file of them
    0600 as on Drive's mount); runtime B's content root and home are empty."""
    where = tmp_path / "runtime"
    drive, home = where / "drive", tmp_path / "runtime-home"
    backup = drive / CONTENT_FOLDER
    (backup / "project/data").mkdir(parents=True)
    (backup / "project/train.py").write_text("print('hi')\n")
    (backup / "project/data/big.bin").write_bytes(os.urandom(300_000))
    (backup / "sample_data").mkdir()
    (backup / "sample_data/never.csv").write_text("colab's own: never restored\n")
    store = drive / HOME_FOLDER
    make_editor_folder(tmp_path / "home-of-A")
    step = {"names": [".vscode-server"], "home": str(tmp_path / "home-of-A"), "store": str(store),
            "tmp_dir": str(tmp_path / "tmp"), "argv": [tar_path()]}
    (tmp_path / "tmp").mkdir()
    assert editor_archives.back_up(step, editor_archives.run_tar_plainly, dry_run=False).exit == 0
    for path in (store / ".vscode-server").rglob("*"):
        if path.is_file():
            path.chmod(0o600)
    home.mkdir()
    content = where / "content"
    (content / "sample_data").mkdir(parents=True)  # what Colab puts there
    (content / "sample_data/README.md").write_text("colab\n")
    return {"where": where, "drive": drive, "home": home, "content": content, "backup": backup}


def lines_of(cell: RunningCell) -> list[str]:
    return [line.rstrip("\n") for line in cell.lines]


def index_of(lines: list[str], start: str) -> int:
    found = [i for i, line in enumerate(lines) if line.startswith(start)]
    assert found, f"no line starts with {start!r}:\n" + "\n".join(lines)
    return found[0]


def test_an_empty_runtime_restores_content_and_the_editor_folder_before_the_connect_line(
        start_runtime: StartRuntime, recycled: dict[str, Path]) -> None:
    cell = start_runtime(extra_env={"COLABSSH_HOME": str(recycled["home"])}, where=recycled["where"])
    lines = lines_of(cell)
    content, home = recycled["content"], recycled["home"]
    connect = index_of(lines, CONNECT_PREFIX)
    assert index_of(lines, f"colabssh: restoring {content} from") < \
        index_of(lines, f"colabssh: restored {content} from Drive: 2 files") < \
        index_of(lines, "colabssh: restored VS Code server") < index_of(lines, "sshd: listening") < connect
    assert (content / "project/train.py").read_text() == "print('hi')\n"
    assert (content / "project/data/big.bin").read_bytes() == (recycled["backup"] / "project/data/big.bin").read_bytes()
    assert not (content / "sample_data/never.csv").exists() and not (content / ".colabssh-tmp").exists()
    server = home / ".vscode-server"
    assert files_under(server) == set(KEPT) | set(EXECUTABLE)
    assert all(os.access(server / rel, os.X_OK) for rel in EXECUTABLE)  # Drive lost them; the archive kept them
    assert not (home / ".colabssh-restoring").exists()
    assert (Jobs(cell.state).current_job() or Path()).is_dir()  # the restore is a job: `sync --attach` replays it
    assert f"COLABSSH_HOME={home}" in (cell.state / "session-env.sh").read_text()


def test_a_content_root_with_a_user_file_and_an_existing_editor_folder_are_untouched(
        start_runtime: StartRuntime, recycled: dict[str, Path]) -> None:
    (recycled["content"] / "mine.txt").write_text("keep me\n")
    (recycled["home"] / ".vscode-server/extensions").mkdir(parents=True)
    cell = start_runtime(extra_env={"COLABSSH_HOME": str(recycled["home"])}, where=recycled["where"])
    lines = lines_of(cell)
    assert index_of(lines, f"colabssh: {recycled['content']} holds files already (mine.txt): not restored; "
                           "`colabssh restore` brings the backup back") < index_of(lines, CONNECT_PREFIX)
    assert sorted(os.listdir(recycled["content"])) == ["mine.txt", "sample_data"]
    assert files_under(recycled["home"] / ".vscode-server") == set()  # an existing folder is never overwritten
    assert "restored VS Code server" not in cell.output


def test_restore_off_skips_it_with_one_line(start_runtime: StartRuntime, recycled: dict[str, Path]) -> None:
    cell = start_runtime(extra_env={"COLABSSH_HOME": str(recycled["home"]), "COLABSSH_RESTORE": "0"},
                         where=recycled["where"])
    assert "colabssh: restore from Drive skipped" in cell.output
    assert sorted(os.listdir(recycled["content"])) == ["sample_data"] and not os.listdir(recycled["home"])


def test_a_broken_restore_warns_and_the_cell_still_connects(start_runtime: StartRuntime,
                                                            recycled: dict[str, Path]) -> None:
    (recycled["content"] / ".colabssh-tmp").symlink_to(recycled["home"])  # rsync's temp folder, replaced by a link
    cell = start_runtime(extra_env={"COLABSSH_HOME": str(recycled["home"])}, where=recycled["where"])
    lines = lines_of(cell)
    warning = index_of(lines, f"colabssh: warning: {recycled['content']} not restored from Drive:")
    assert "symbolic link" in lines[warning] and warning < index_of(lines, CONNECT_PREFIX)
    assert not (recycled["content"] / "project").exists()
    assert (recycled["home"] / ".vscode-server" / KEPT[0]).is_file()  # the editor folder still came back


def test_a_partial_restore_says_so_and_names_the_command(recycled: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    real = worker.run_rsync

    def cut_short(job: Path, spec: dict, lock_fd: int | None, *rest: object) -> int:
        real(job, spec, lock_fd)
        return 23  # as when a file of the backup could not be read

    monkeypatch.setattr(worker, "run_rsync", cut_short)
    said: list[str] = []
    comeback.restore_at_start(recycled["content"], recycled["drive"], recycled["home"], tmp_path / "state", True,
                              said.append)
    warning = index_of(said, "colabssh: warning: ")
    assert said[warning].startswith(f"colabssh: warning: {recycled['content']} was restored only in part (rsync "
                                    "exit 23") and "run `colabssh restore` to bring the rest back" in said[warning]
    assert index_of(said, "colabssh: restored VS Code server") > warning  # the next step still runs
    assert not Jobs(tmp_path / "state").is_locked()


def test_no_backup_and_no_drive_say_nothing(recycled: dict[str, Path], tmp_path: Path) -> None:
    shutil.rmtree(recycled["drive"] / "colabssh")
    said: list[str] = []
    comeback.restore_at_start(recycled["content"], recycled["drive"], recycled["home"], tmp_path / "s", True,
                              said.append)
    comeback.restore_at_start(recycled["content"], None, recycled["home"], tmp_path / "s", True, said.append)
    assert said == []


def test_the_restore_shows_progress_lines_of_the_total(recycled: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comeback, "PROGRESS_EVERY", 0.0)  # every progress event rsync gives, not one per 3 s
    said: list[str] = []
    comeback.restore_at_start(recycled["content"], recycled["drive"], recycled["home"], tmp_path / "state", True,
                              said.append)
    progress = [line for line in said if line.startswith("colabssh: restoring: ")]
    assert progress and all(" of 2 files, " in line and "of 293.0 KiB" in line for line in progress), said
    assert index_of(said, "colabssh: restoring: ") < index_of(said, f"colabssh: restored {recycled['content']}")
    archives = [line for line in said if line.startswith("colabssh: restoring VS Code server: ")]
    assert archives[0].startswith("colabssh: restoring VS Code server: 1 of 8 archives, ") and " of 526 B (" in \
        archives[0] and len(archives) == 7, said  # one line per archive but the last (the line after says done)
    assert index_of(said, "colabssh: restoring VS Code server: ") < index_of(said, "colabssh: restored VS Code server")


@pytest.mark.parametrize("damage", ["archive", "index", "missing archive"])
def test_a_damaged_backup_of_the_editor_folder_warns_and_is_skipped(recycled: dict[str, Path], tmp_path: Path,
                                                                    damage: str) -> None:
    kept = recycled["drive"] / HOME_FOLDER / ".vscode-server"
    archive = sorted((kept / "archives").iterdir())[-1]
    if damage == "archive":
        archive.write_bytes(archive.read_bytes()[:700])  # cut off in the middle of its first file
    elif damage == "index":
        (kept / "index.json").write_text('{"version": 1, "units": {"data": {"archive": "../../x"}}}')
    else:
        archive.unlink()
    said: list[str] = []
    comeback.restore_at_start(recycled["content"], recycled["drive"], recycled["home"], tmp_path / "state", True,
                              said.append)
    warnings = [line for line in said if line.startswith("colabssh: warning: ")]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"colabssh: warning: {recycled['home'] / '.vscode-server'} not restored from Drive: "), said
    assert warnings[0].endswith("(the editor downloads its server again at the next connection)")
    assert {"archive": "does not extract (tar exit 2", "index": "is damaged (not an index colabssh wrote)",
            "missing archive": "is missing (named by"}[damage] in warnings[0]
    assert os.listdir(recycled["home"]) == []  # nothing half-restored, no staging folder left
    assert (recycled["content"] / "project/train.py").is_file()  # the content root came back all the same


def test_a_state_folder_that_fails_warns_and_restores_nothing(recycled: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a folder\n")  # the runner's lock cannot be made
    said: list[str] = []
    comeback.restore_at_start(recycled["content"], recycled["drive"], recycled["home"], tmp_path / "state", True,
                              said.append)
    assert len(said) == 1 and said[0].startswith("colabssh: warning: nothing restored from Drive: ")
    assert "`colabssh restore`" in said[0] and not (recycled["content"] / "project").exists()


def test_a_backup_too_big_for_the_disk_warns_and_the_cell_still_connects(start_runtime: StartRuntime,
                                                                         recycled: dict[str, Path]) -> None:
    with open(recycled["backup"] / "project/data/huge.bin", "wb") as sparse:
        sparse.truncate(8 << 40)  # 8 TiB that take no room on Drive's side here, and do not fit on the runtime
    cell = start_runtime(extra_env={"COLABSSH_HOME": str(recycled["home"])}, where=recycled["where"])
    lines = lines_of(cell)
    warning = index_of(lines, f"colabssh: warning: {recycled['content']} not restored from Drive: not enough "
                              "free space at")
    assert warning < index_of(lines, CONNECT_PREFIX)
    assert sorted(os.listdir(recycled["content"])) == ["sample_data"]


def test_a_restore_cut_off_by_a_kill_is_finished_by_the_next_run_not_taken_for_user_files(
        recycled: dict[str, Path], tmp_path: Path) -> None:
    """A kill -9 of the cell mid-restore leaves part of the backup and the marker: the next run finishes it."""
    said: list[str] = []
    comeback.restore_at_start(recycled["content"], recycled["drive"], recycled["home"], tmp_path / "state", True,
                              said.append)
    assert not (recycled["content"] / comeback.RESTORING).exists()  # a whole restore leaves no marker
    (recycled["content"] / "project/data/big.bin").unlink()  # what a kill leaves: part of it, and the marker
    (recycled["content"] / comeback.RESTORING).touch()
    shutil.rmtree(recycled["home"] / ".vscode-server")
    said.clear()
    comeback.restore_at_start(recycled["content"], recycled["drive"], recycled["home"], tmp_path / "state2", True,
                              said.append)
    assert any("holds a restore a stopped run of the cell began: finishing it" in line for line in said), said
    assert (recycled["content"] / "project/data/big.bin").read_bytes() == \
        (recycled["backup"] / "project/data/big.bin").read_bytes()
    assert not (recycled["content"] / comeback.RESTORING).exists()
    again: list[str] = []  # and now the content root is the user's: a third run leaves it alone
    comeback.restore_at_start(recycled["content"], recycled["drive"], recycled["home"], tmp_path / "state3", True,
                              again.append)
    assert any("holds files already (project)" in line for line in again), again
