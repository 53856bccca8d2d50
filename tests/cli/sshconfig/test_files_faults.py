"""A6/A10: failed writes leave every file as it was, a SIGKILL mid-write leaves the old or the new
file (never a partial one), concurrent runs lose nothing, and an outside edit is never overwritten."""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from colabssh_cli.errors import ColabsshError
from colabssh_cli.paths import Paths
from colabssh_cli.sshconfig.apply import apply, apply_with_retry, locked
from colabssh_cli.sshconfig.backups import backups_of, kept_backups
from colabssh_cli.sshconfig.files import PlanOutdated
from colabssh_cli.sshconfig.plan import Plan, plan_connect, plan_forget
from colabssh_cli.sshconfig.render import BEGIN_MARKER, END_MARKER
from tests.cli.sshconfig.test_support import KEY_A, KEY_B, connect, entry, leftovers, snapshot, ssh_g
from tests.fakes import REPO


@pytest.fixture
def paths(isolated_home: Path) -> Paths:
    """A home with a user config and one session already there, so every file has old bytes."""
    paths = Paths(isolated_home)
    paths.ssh_dir.mkdir(mode=0o700)
    paths.user_config.write_bytes(b"Host a\r\n  Port 1\r\n# caf\xe9")
    connect(paths, "other", KEY_B, port=7)
    return paths


def files(paths: Paths) -> dict[Path, bytes | None]:
    return {p: (p.read_bytes() if p.exists() else None) for p in (paths.user_config, paths.config, paths.known_hosts)}


def _raiser(exc: BaseException, when: Callable[..., bool] = lambda *a: True,
            real: Callable[..., object] | None = None) -> Callable[..., object]:
    def fake(*args: object, **kwargs: object) -> object:
        if when(*args):
            raise exc
        assert real is not None
        return real(*args, **kwargs)

    return fake


def _half_then_enospc() -> Callable[..., int]:
    real, calls = os.write, []

    def fake(fd: int, data: bytes) -> int:
        calls.append(fd)
        if len(calls) == 1:
            return real(fd, bytes(data[: max(1, len(data) // 2)]))
        raise OSError(errno.ENOSPC, "No space left on device")

    return fake


@pytest.mark.parametrize("target, make_fake, message", [
    ("os.write", _half_then_enospc, "No space left on device"),
    ("os.fsync", lambda: _raiser(OSError(errno.EIO, "Input/output error")), "Input/output error"),
    ("os.replace", lambda: _raiser(OSError(errno.EXDEV, "Invalid cross-device link")), "Invalid cross-device link"),
    ("tempfile.mkstemp", lambda: _raiser(OSError(errno.ENOSPC, "No space left on device")), "No space left"),
    ("tempfile.mkstemp", lambda: _raiser(OSError(errno.EROFS, "Read-only file system")), "Read-only file system"),
])
def test_a_failed_write_leaves_every_file_intact_and_no_temp(paths: Paths, monkeypatch: pytest.MonkeyPatch,
                                                             target: str, make_fake: Callable[[], object],
                                                             message: str) -> None:
    before, backups = snapshot(paths.user_config, paths.config, paths.known_hosts), backups_of(paths.user_config)
    plan = plan_forget(paths, "other")  # changes all three files
    module, name = target.split(".")
    monkeypatch.setattr({"os": os, "tempfile": tempfile}[module], name, make_fake())
    with pytest.raises(ColabsshError, match=message) as caught:
        apply(paths, plan)
    monkeypatch.undo()
    assert caught.value.hint and "Traceback" not in caught.value.message
    assert snapshot(paths.user_config, paths.config, paths.known_hosts) == before
    assert leftovers(paths) == []
    assert [b.read_bytes() for b in backups_of(paths.user_config)] in (
        [b.read_bytes() for b in backups], [b.read_bytes() for b in backups] + [before[paths.user_config][0]])


def test_an_interrupt_between_fsync_and_replace_leaves_the_files_intact(paths: Paths,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(paths.user_config, paths.config, paths.known_hosts)
    plan = plan_connect(paths, entry(paths, "colab"), KEY_A)
    monkeypatch.setattr(os, "replace", _raiser(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        apply(paths, plan)
    monkeypatch.undo()
    assert snapshot(paths.user_config, paths.config, paths.known_hosts) == before and leftovers(paths) == []


def test_a_failure_on_the_last_file_rolls_back_the_ones_already_written(paths: Paths,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    forget_other = plan_forget(paths, "other")  # changes all three files
    before = files(paths)
    user = str(paths.user_config)
    monkeypatch.setattr(os, "replace", _raiser(OSError(errno.EBUSY, "Device or resource busy"),
                                               when=lambda src, dst: os.fspath(dst) == user, real=os.replace))
    with pytest.raises(ColabsshError, match=f"cannot write {user}: Device or resource busy"):
        apply(paths, forget_other)
    monkeypatch.undo()
    assert files(paths) == before and leftovers(paths) == []
    assert ssh_g(paths.user_config, "other")["port"] == ["7"]


def test_a_stale_temp_file_from_a_killed_run_is_removed_by_the_next_run(paths: Paths) -> None:
    stale = paths.ssh_dir / ".config.colabssh-tmp-abc123"
    stale.write_bytes(b"half a confi")
    own_stale = paths.root / ".config.colabssh-tmp-xyz"
    own_stale.write_bytes(b"")
    connect(paths, "colab")
    assert leftovers(paths) == []


# ------------------------------------------------------------------------------------- SIGKILL

_CHILD = """
import os, sys
from pathlib import Path
from colabssh_cli.paths import Paths
from tests.cli.sshconfig.test_support import connect

paths, fifo, when = Paths(Path(sys.argv[1])), sys.argv[2], sys.argv[3]
real_replace = os.replace

def paused_replace(src, dst):
    if os.fspath(dst) != str(paths.user_config):
        return real_replace(src, dst)
    if when == "after":
        real_replace(src, dst)
    print("paused", flush=True)
    with open(fifo) as stop:  # blocks until the test opens the FIFO: it never does, it kills us
        stop.read()
    if when == "before":
        real_replace(src, dst)

os.replace = paused_replace
connect(paths, "colab")
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_sigkill_mid_write_leaves_the_old_or_the_new_file_never_a_partial_one(paths: Paths, tmp_path: Path,
                                                                              when: str) -> None:
    paths.user_config.write_bytes(b"Host a\n  Port 1\n" * 2000)  # big enough that a partial file would show
    old = paths.user_config.read_bytes()
    new = plan_connect(paths, entry(paths, "colab"), KEY_A).files[paths.user_config][1]
    fifo = tmp_path / "pause"
    os.mkfifo(fifo)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(paths.home), str(fifo), when], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             env={**os.environ, "HOME": str(paths.home), "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == b"paused\n", child.stderr.read() if child.stderr else b""
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert paths.user_config.read_bytes() == (old if when == "before" else new)
    assert leftovers(paths) != []  # the killed run's temp files (new version, copies of the old ones)
    assert paths.journal.exists()  # and its journal: the next run finishes what it started
    apply_with_retry(paths, lambda: plan_connect(paths, entry(paths, "colab"), KEY_A))
    assert paths.user_config.read_bytes() == new and leftovers(paths) == [] and not paths.journal.exists()
    assert ssh_g(paths.user_config)["port"] == ["12345"]


# --------------------------------------------------------------------------------- concurrency


def _connect_when_released(home: str, index: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    paths = Paths(Path(home))
    alias, key = f"s{index}", (KEY_A if index % 2 else KEY_B)
    barrier.wait(timeout=60)
    apply_with_retry(paths, lambda: plan_connect(paths, entry(paths, alias, port=1000 + index),
                                                                     key))


def test_sixteen_concurrent_connects_lose_nothing(paths: Paths) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(16)
    workers = [context.Process(target=_connect_when_released, args=(str(paths.home), i, barrier)) for i in range(16)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * 16
    user = paths.user_config.read_bytes().replace(b"\r\n", b"\n").split(b"\n")
    assert user.count(BEGIN_MARKER.encode()) == 1 and user.count(END_MARKER.encode()) == 1
    hosts = sorted(line for line in paths.config.read_text().splitlines() if line.startswith("Host "))
    assert hosts == sorted(["Host other"] + [f"Host s{i}" for i in range(16)])
    pins = paths.known_hosts.read_text().splitlines()
    assert sorted(line.split()[0] for line in pins) == sorted(["colabssh-other"] + [f"colabssh-s{i}"
                                                                                    for i in range(16)])
    for i in (0, 7, 15):
        assert ssh_g(paths.user_config, f"s{i}")["port"] == [str(1000 + i)]
    assert leftovers(paths) == [] and kept_backups(paths.user_config) != []


def test_an_outside_edit_between_plan_and_write_is_never_overwritten(paths: Paths) -> None:
    """VS Code's "Add New SSH Host" appends to ~/.ssh/config: such an edit survives."""
    original = b"Host a\r\n  Port 1\r\n# caf\xe9"
    stale = plan_forget(paths, "other")
    with paths.user_config.open("ab") as config:
        config.write(b"\nHost added-by-vscode\n  HostName 10.0.0.1\n")
    edited = files(paths)
    with pytest.raises(PlanOutdated):
        apply(paths, stale)
    assert files(paths) == edited and leftovers(paths) == []

    calls: list[int] = []

    def make_plan() -> Plan:
        plan = plan_forget(paths, "other")
        if not calls:  # another program writes right after colabssh read the files
            with paths.user_config.open("ab") as config:
                config.write(b"Host second-edit\n")
        calls.append(1)
        return plan

    apply_with_retry(paths, make_plan)
    assert len(calls) == 2
    edits = b"\nHost added-by-vscode\n  HostName 10.0.0.1\nHost second-edit\n"
    assert paths.user_config.read_bytes() == original + edits
    assert not paths.config.exists() and not paths.known_hosts.exists()


def test_the_lock_can_be_held_around_plan_and_apply(paths: Paths) -> None:
    with locked(paths):
        with locked(paths):
            apply(paths, plan_connect(paths, entry(paths, "colab"), KEY_A))
    assert ssh_g(paths.user_config)["port"] == ["12345"]


def test_the_lock_excludes_another_process(paths: Paths) -> None:
    probe = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
             "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
             "except BlockingIOError:\n    print('held')\n")
    run = lambda: subprocess.run([sys.executable, "-c", probe, str(paths.lock)],  # noqa: E731
                                 capture_output=True, text=True, check=True).stdout.strip()
    with locked(paths):
        assert run() == "held"
        held = paths.lock.stat().st_ino
    assert not paths.lock.exists()  # removed before it was let go: a waiter holding it opens the new one
    with locked(paths):
        assert run() == "held" and paths.lock.parent == paths.root
    assert held and not paths.lock.exists()


def test_an_atomic_write_never_replaces_a_fifo_or_a_device(tmp_path: Path) -> None:
    from colabssh_cli.errors import BAD_INPUT, ColabsshError
    from colabssh_cli.sshconfig.files import atomic_write

    fifo = tmp_path / "sessions.json"
    os.mkfifo(fifo)
    with pytest.raises(ColabsshError) as refused:
        atomic_write(fifo, b"{}", 0o600)
    assert refused.value.exit_code == BAD_INPUT and "is a FIFO (named pipe), not a file" in refused.value.message
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and sorted(os.listdir(tmp_path)) == ["home", "sessions.json"]
