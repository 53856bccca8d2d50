"""colabssh's lock: in ``~/.ssh/colabssh/``, there only while held, one holder at a time across processes (its file
is removed before it is let go, so a waiter must notice), and an older colabssh holding ``~/.ssh/.colabssh.lock``
is waited for. Real processes, real flock; /proc/locks shows who waits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from colabssh_cli.paths import Paths
from colabssh_cli.sshconfig.apply import locked
from tests.fakes import wait_until

HOLD = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.readline()\n")
PROBE = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\n"
         "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
         "except BlockingIOError:\n    print('held')\n")
COLABSSH_LOCKED = ("import sys\nfrom colabssh_cli.paths import Paths\nfrom colabssh_cli.sshconfig.apply import locked\n"
                   "with locked(Paths.from_env()):\n    print('got', flush=True)\n    sys.stdin.readline()\n")
COUNT = ("import sys\nfrom colabssh_cli.paths import Paths\nfrom colabssh_cli.sshconfig.apply import locked\n"
         "paths = Paths.from_env(); counter = paths.home / 'counter'\n"
         "for _ in range(int(sys.argv[1])):\n"
         "    with locked(paths):\n"
         "        value = int(counter.read_text())\n"
         "        counter.write_text(str(value + 1))\n")


@pytest.fixture
def paths(isolated_home: Path) -> Paths:
    return Paths.from_env()


def python(script: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    return subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env, **kwargs)  # type: ignore[call-overload]


def waiting_on(path: Path, pid: int) -> bool:
    """Whether /proc/locks shows PID blocked on a lock of the file at PATH."""
    inode = os.stat(path).st_ino
    lines = Path("/proc/locks").read_text().splitlines()
    return any("->" in line and f" {pid} " in line and line.split()[-3].endswith(f":{inode}") for line in lines)


def test_the_lock_is_in_colabssh_folder_and_there_only_while_held(paths: Paths) -> None:
    assert paths.lock == paths.home / ".ssh" / "colabssh" / "lock"
    with locked(paths):
        probe = subprocess.run([sys.executable, "-c", PROBE, str(paths.lock)], capture_output=True, text=True,
                               check=True)
        assert probe.stdout.strip() == "held" and paths.lock.stat().st_mode & 0o777 == 0o600
    assert not paths.lock.exists() and not paths.legacy_lock.exists()


def test_a_run_that_changes_nothing_leaves_no_folder_behind(paths: Paths) -> None:
    with locked(paths):
        assert paths.root.is_dir()
    assert sorted(os.listdir(paths.home)) == []  # ~/.ssh and ~/.ssh/colabssh were made for the lock only
    paths.ssh_dir.mkdir(mode=0o700)
    (paths.ssh_dir / "id_rsa").write_text("mine")
    with locked(paths):
        (paths.root / "kept").write_text("a file of the run")
    assert sorted(p.name for p in paths.home.rglob("*")) == [".ssh", "colabssh", "id_rsa", "kept"]
    with locked(paths):
        pass
    assert (paths.root / "kept").exists()  # a folder the run did not make stays, whatever is in it


def test_one_holder_at_a_time_although_the_file_goes_at_each_release(paths: Paths) -> None:
    """Eight processes, each adding 1 to a counter under the lock 40 times: every increment survives. (Without
    the check that the file held is still the one at the path, a waiter holding the removed file and a newcomer
    holding the new one both write, and increments are lost.)"""
    (paths.home / "counter").write_text("0")
    workers = [python(COUNT, "40") for _ in range(8)]
    for worker in workers:
        assert worker.wait(timeout=120) == 0
    assert (paths.home / "counter").read_text() == "320"
    assert not paths.lock.exists()


def test_an_older_colabssh_holding_the_old_lock_is_waited_for(paths: Paths) -> None:
    paths.ssh_dir.mkdir(mode=0o700)
    old = python(HOLD, str(paths.legacy_lock))
    new = None
    try:
        assert old.stdout is not None and old.stdout.readline().strip() == "held"
        new = python(COLABSSH_LOCKED)
        wait_until(lambda: waiting_on(paths.legacy_lock, new.pid), what="colabssh to wait on the old lock")
        assert old.stdin is not None
        old.stdin.write("\n")
        old.stdin.flush()
        assert new.stdout is not None and new.stdout.readline().strip() == "got"
        assert paths.legacy_lock.exists()  # an older colabssh used it just now: its file stays
    finally:
        for process in (old, new):
            if process is not None:
                process.communicate("\n", timeout=30)
    assert old.returncode == 0 and new is not None and new.returncode == 0


def test_an_old_lock_file_nobody_holds_is_removed(paths: Paths) -> None:
    paths.ssh_dir.mkdir(mode=0o700)
    paths.legacy_lock.write_bytes(b"")
    with locked(paths):
        assert not paths.legacy_lock.exists()
    assert sorted(os.listdir(paths.ssh_dir)) == []


def test_a_run_that_must_wait_says_what_it_waits_for(paths: Paths) -> None:
    paths.root.mkdir(mode=0o700, parents=True)
    holder = python(HOLD, str(paths.lock))
    waiter = None
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        waiter = python(COLABSSH_LOCKED, stderr=subprocess.PIPE)
        assert waiter.stderr is not None
        assert waiter.stderr.readline() == (f"colabssh: waiting: another colabssh command holds {paths.lock} (it goes "
                                            "on once that command ends)\n")
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert waiter.stdout is not None and waiter.stdout.readline().strip() == "got"
    finally:
        for process in (holder, waiter):
            if process is not None:
                process.communicate("\n", timeout=30)
    assert waiter is not None and waiter.returncode == 0


def test_a_link_planted_at_the_locks_path_is_refused_not_followed(paths: Paths, tmp_path: Path) -> None:
    from colabssh_cli.errors import ColabsshError

    paths.root.mkdir(mode=0o700, parents=True)
    target = tmp_path / "elsewhere"
    paths.lock.symlink_to(target)
    with pytest.raises(ColabsshError, match="lock"):
        with locked(paths):
            pass
    assert not target.exists() and paths.lock.is_symlink()
