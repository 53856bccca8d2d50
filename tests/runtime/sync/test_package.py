"""The runtime side of sync as one package (colab_bootstrap/sync/): its shape, its one table of refusals, a request
that prepare leaves as it was, and a worker that runs the job it holds."""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest

import colab_bootstrap.sync
from colab_bootstrap.sync import protocol
from colab_bootstrap.sync.jobs import Jobs
from colab_bootstrap.sync.plan import prepare
from colab_bootstrap.sync.request import Request
from colab_bootstrap.sync.worker import run_rsync
from colabssh_cli.errors import BAD_INPUT, FAILURE, MISSING_TOOL

PACKAGE = Path(colab_bootstrap.sync.__file__).parent


def test_no_module_of_the_package_is_over_400_lines_and_its_init_imports_nothing() -> None:
    sizes = {path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    assert {"protocol.py", "main.py", "runs.py", "worker.py", "jobs.py", "plan.py"} <= set(sizes)
    assert max(sizes.values()) <= 400, sizes
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]


def test_one_table_of_refusals_for_both_sides() -> None:
    assert protocol.laptop_exit("bad_input") == BAD_INPUT and protocol.laptop_exit("no_rsync") == MISSING_TOOL
    assert protocol.laptop_exit("no_drive") == FAILURE and protocol.laptop_exit("something new") == FAILURE
    assert {laptop for _, laptop in protocol.REFUSALS.values()} <= {FAILURE, BAD_INPUT, MISSING_TOOL}
    for kind, (runner, _) in protocol.REFUSALS.items():
        assert protocol.SyncRefused("m", "h", kind).exit_code == runner
        assert runner == 1 or runner >= 64  # never one of rsync's own codes
    assert protocol.SyncRefused("m").exit_code == protocol.EXIT_BAD_INPUT
    assert protocol.SyncRefused("m", "", "locked", 99).exit_code == 99


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    content, drive, state = tmp_path / "content", tmp_path / "drive", tmp_path / "state"
    for folder in (content, drive, state):
        folder.mkdir()
    (content / "a.txt").write_text("a")
    return {"content": content, "drive": drive, "state": state}


def test_prepare_leaves_its_request_as_it_was(tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree["content"].parent)
    request = Request("backup", Path("content"), Path("drive"), folder="./backup//here/", paths=["a.txt", "./a.txt"])
    before = copy.deepcopy(request)
    plan = prepare(request)
    assert request == before
    assert plan.request.content == tree["content"] and plan.request.drive == tree["drive"]
    assert (plan.request.folder, plan.request.paths) == ("backup/here", ["a.txt"])
    with pytest.raises(protocol.SyncRefused):
        prepare(Request("backup", tree["content"], tree["drive"], folder="."))


def test_the_worker_runs_the_job_it_holds_not_what_is_on_disk(tree: dict[str, Path]) -> None:
    plan = prepare(Request("backup", tree["content"], tree["drive"]))
    jobs = Jobs(tree["state"])
    job, spec = jobs.new_job(plan, "test")
    (job / "job.json").write_text("{}")  # changed under it: the worker does not read it again
    assert run_rsync(job, spec, None) == 0
    assert (tree["drive"] / protocol.DEFAULT_FOLDER / "a.txt").read_text() == "a"
    assert not (tree["drive"] / protocol.DEFAULT_FOLDER / ".colabssh-tmp").exists()  # removed once empty


def test_the_result_event_is_typed_on_both_sides(tree: dict[str, Path]) -> None:
    from colab_bootstrap.sync.follow import summary
    from colab_bootstrap.sync.output import OutputReader
    from colab_bootstrap.sync.protocol import SyncResult
    from colabssh_cli.transfer.client import SyncOutcome

    plan = prepare(Request("backup", tree["content"], tree["drive"]))
    job, spec = Jobs(tree["state"]).new_job(plan, "test")
    event = summary(job, OutputReader(), {"exit": 0, "ended": 1.5}, spec)
    assert list(event)[:3] == ["event", "job", "exit"] and len(event) == 30  # the JSON line, with editors
    result = SyncResult.from_event({**event, "notes": ["a key it does not know"]})
    assert result.to_event() == event and result.exit == 0 and result.dest == str(tree["drive"] / "colabssh/content")
    assert SyncOutcome({"event": "result", "exit": 23}).result.new_files == 0  # a missing key: its default
    assert SyncOutcome(event).exit_code == 0 and SyncOutcome({"event": "result"}).exit_code == 1


@pytest.mark.parametrize(("folder", "excludes", "message"), [
    (".", [], "the backup folder cannot be the Drive folder itself"),
    ("../up", [], "the Drive folder '../up' must be a path inside its root"),
    ("ok", [""], "the exclude pattern '' is empty or has a control character"),
    ("ok", ["!"], "the exclude pattern '!' would clear colabssh's own exclusions"),
])
def test_the_laptop_and_the_runner_refuse_with_one_check(tree: dict[str, Path], folder: str, excludes: list[str],
                                                         message: str) -> None:
    from types import SimpleNamespace

    from colabssh_cli.errors import ColabsshError
    from colabssh_cli.transfer.client import SyncOptions, start_args

    remote = SimpleNamespace(session=SimpleNamespace(content=str(tree["content"]), drive=str(tree["drive"])))
    with pytest.raises(ColabsshError) as laptop:
        start_args(remote, SyncOptions(folder=folder, excludes=excludes))  # type: ignore[arg-type]
    with pytest.raises(protocol.SyncRefused) as runner:
        prepare(Request("backup", tree["content"], tree["drive"], folder=folder, excludes=excludes))
    assert laptop.value.message.startswith(message) and laptop.value.exit_code == BAD_INPUT
    assert (runner.value.message, runner.value.hint) == (laptop.value.message, laptop.value.hint)
    assert protocol.laptop_exit(runner.value.kind) == BAD_INPUT


def test_the_options_travel_as_the_runner_reads_them(tree: dict[str, Path]) -> None:
    from colab_bootstrap.sync.main import _parse_args

    options = protocol.SyncOptions("restore", ["b", "a"], "my/backup", ["*.log", "x y"], delete=True, dry_run=True,
                                   force=True, bwlimit=300)
    _, args = _parse_args(["start", "--content", str(tree["content"]), "--drive", str(tree["drive"]),
                           *options.runner_args(), "--mode", options.mode, "--folder", options.folder, "--",
                           *options.paths])
    assert protocol.SyncOptions.from_args(args) == options
    request = Request.of(options, tree["content"], tree["drive"])
    assert (request.mode, request.folder, request.paths, request.bwlimit) == ("restore", "my/backup", ["b", "a"], 300)
    assert Request.of(protocol.SyncOptions(), tree["content"], tree["drive"]).paths == ["."]
