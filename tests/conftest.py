"""Shared fixtures. Tests never touch the real HOME, ~/.ssh or the system's sshd config.

The fast tier (``pytest -m "not slow"``, ``scripts/test.sh --fast``): a test is marked ``slow`` here when it
starts a runtime (it uses one of RUNTIME_FIXTURES, directly or through another fixture), lives in
tests/e2e/, or says so itself (``pytest.mark.slow``: it starts a cell, an sshd or torch on its own).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from colabssh_cli.paths import Paths
from tests.cellrunner import RunningCell, start_cell

RUNTIME_FIXTURES = {"start_runtime", "runtime", "connected"}
E2E = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        starts_a_runtime = RUNTIME_FIXTURES & set(getattr(item, "fixturenames", ()))
        if starts_a_runtime or E2E in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)


def _listing(folder: Path) -> list[str]:
    """Every path below FOLDER with its size and mtime ([] when it is not there)."""
    if not folder.is_dir():
        return []
    return sorted(f"{p.relative_to(folder)} {p.lstat().st_size} {p.lstat().st_mtime_ns}" for p in folder.rglob("*"))


@pytest.fixture(autouse=True, scope="session")
def machine_left_alone() -> Iterator[None]:
    """The suite never changes this machine's /etc/profile.d (where the cell, run as root, puts its snippet), nor
    colabssh's own folders in the real HOME (a runtime's state and code cache, the laptop's keys and config)."""
    real_home = Path(os.path.expanduser("~"))  # before any test's isolated_home
    watched = [Path("/etc/profile.d"), real_home / ".colabssh-runtime", real_home / ".ssh" / "colabssh"]
    before = {folder: _listing(folder) for folder in watched}
    yield
    for folder in watched:
        assert _listing(folder) == before[folder], f"the tests changed {folder}"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path) -> Iterator[Path]:
    """A HOME of the test's own. Its own MonkeyPatch: a test's ``monkeypatch.undo()`` (which ends that test's
    patches) must not bring the real HOME back for the rest of the test."""
    home = tmp_path / "home"
    home.mkdir()
    env = pytest.MonkeyPatch()
    env.setenv("HOME", str(home))
    for name in list(os.environ):
        if name.startswith(("COLABSSH_", "NGROK_", "PYNGROK_")):
            env.delenv(name)
    env.setenv("NO_COLOR", "1")
    env.setenv("COLABSSH_OPENSSH_HOME", str(home))  # the home "OpenSSH reads": never the real one
    env.setenv("COLABSSH_PROFILE_D", "")  # in-process runtime code: never the machine's /etc/profile.d
    yield home
    env.undo()
    _remove_own_socket_folder(home)


def _remove_own_socket_folder(home: Path) -> None:
    """This HOME's own socket folder under the machine's /tmp/colabssh-<uid> (a test's home is too long for
    ~/.ssh/colabssh/cm), when a test left it empty without a `forget`: a test run leaves no folder per test there.
    The shared parent stays (another test run may be using it)."""
    from colabssh_cli.paths import Paths
    from colabssh_cli.sshconfig.render import control_path_fits, home_control_dir

    paths = Paths(home)
    if hasattr(os, "geteuid") and not control_path_fits(paths.control_dir):
        try:
            home_control_dir(paths).rmdir()  # only when empty: a socket left by a live master stays
        except OSError:
            pass


@pytest.fixture
def client_key(isolated_home: Path) -> str:
    """colabssh's own client key in the temp HOME; returns its public line. Its "made colabssh's own key" note is
    not the test's output."""
    import contextlib
    import io

    from colabssh_cli.paths import Paths
    from colabssh_cli.remote.keys import ensure_client_key

    with contextlib.redirect_stderr(io.StringIO()):
        return ensure_client_key(Paths.from_env())


@pytest.fixture
def render(tmp_path: Path, client_key: str) -> Callable[..., Path]:
    """Write the cell that `colabssh bootstrap` prints to a file; return its path."""
    from colabssh_cli.app import main

    def _render(tunnel: str = "local", *extra: str) -> Path:
        out = tmp_path / f"cell-{tunnel}.py"
        assert main(["bootstrap", "--tunnel", tunnel, "--out", str(out), *extra]) == 0
        return out

    return _render


@pytest.fixture
def start_runtime(tmp_path: Path, render: Callable[..., Path]) -> Iterator[Callable[..., RunningCell]]:
    """Start the printed cell as a local runtime; everything started is stopped afterwards."""
    started: list[RunningCell] = []

    def _start(tunnel: str = "local", extra_env: dict[str, str] | None = None, expect_code: bool = True,
               where: Path | None = None, cell: Path | None = None) -> RunningCell:
        running = start_cell(cell or render(tunnel), where or tmp_path / "runtime", extra_env, expect_code)
        started.append(running)
        return running

    yield _start
    for running in started:
        running.stop()


@pytest.fixture
def runtime(start_runtime: Callable[..., RunningCell]) -> RunningCell:
    """A running local runtime (tunnel: local) with its connection code."""
    return start_runtime("local")


@dataclass
class Connected:
    alias: str
    runtime: RunningCell
    paths: Paths


@pytest.fixture
def connected(runtime: RunningCell) -> Iterator[Connected]:
    """The `runtime`, connected with `colabssh connect CODE --no-open` (alias 'colab')."""
    from colabssh_cli.app import main
    from colabssh_cli.remote.runner import close_shared_connection

    assert main(["connect", runtime.code, "--no-open"]) == 0
    paths = Paths.from_env()
    yield Connected("colab", runtime, paths)
    close_shared_connection(paths, "colab")
