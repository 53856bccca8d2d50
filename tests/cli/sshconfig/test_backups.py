"""The backups of ~/.ssh/config: the user's original (written once) and the latest dated one, no more; an install
with many dated backups is tidied (the oldest becomes the original); only colabssh's exact names are touched; a
connect undone after a failed check leaves no new backup of its own; a kill at any write leaves the config whole
and a backup of its earlier bytes. `ssh -G` (the real one) reads every config that is left."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from colabssh_cli.errors import ColabsshError
from colabssh_cli.paths import Paths
from colabssh_cli.sshconfig.backups import backups_of, kept_backups, original_of
from colabssh_cli.sshconfig.render import CREATED_NOTE
from tests.cli.sshconfig.test_support import KEY_A, KEY_B, connect, entry, forget, leftovers, ssh_g

USER = b"Host mine\r\n  HostName example.org\r\n# caf\xe9"  # CRLF, a Latin-1 byte, no final newline


@pytest.fixture
def paths(isolated_home: Path) -> Paths:
    paths = Paths(isolated_home)
    paths.ssh_dir.mkdir(mode=0o700)
    return paths


def beside(paths: Paths) -> list[str]:
    """What ~/.ssh holds, colabssh's folder left out."""
    return sorted(name for name in os.listdir(paths.ssh_dir) if name != "colabssh")


def dated(paths: Paths, stamp: str, data: bytes) -> Path:
    path = paths.ssh_dir / f"config.colabssh-bak-{stamp}"
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def test_five_cycles_keep_the_original_and_the_latest_backup_only(paths: Paths) -> None:
    paths.user_config.write_bytes(USER)
    paths.user_config.chmod(0o600)
    for _ in range(5):
        connect(paths)
        connect(paths, "other", KEY_B)
        forget(paths, "other")
        before_forget = paths.user_config.read_bytes()
        forget(paths)
    original, latest = kept_backups(paths.user_config)
    assert original == original_of(paths.user_config) and original.read_bytes() == USER
    assert latest.read_bytes() == before_forget and latest == backups_of(paths.user_config)[0]
    assert beside(paths) == sorted(["config", "config.colabssh-original", latest.name])
    assert paths.user_config.read_bytes() == USER and ssh_g(paths.user_config, "mine")["hostname"] == ["example.org"]
    assert all(stat.S_IMODE(os.stat(b).st_mode) == 0o600 for b in (original, latest)) and leftovers(paths) == []


def test_the_original_is_written_once(paths: Paths) -> None:
    paths.user_config.write_bytes(USER)
    connect(paths)
    forget(paths)
    paths.user_config.write_bytes(b"Host edited\n")  # the user's own change later
    connect(paths)
    assert original_of(paths.user_config).read_bytes() == USER
    assert [b.read_bytes() for b in backups_of(paths.user_config)] == [b"Host edited\n"]


def test_a_user_without_a_config_keeps_no_backup_of_colabsshs_own(paths: Paths) -> None:
    """No config before: there is no original, and the file colabssh created (nothing of the user's in it) is
    not backed up when forget removes it."""
    for _ in range(3):
        connect(paths)
        assert CREATED_NOTE.encode() in paths.user_config.read_bytes()
        forget(paths)
    assert beside(paths) == [] and kept_backups(paths.user_config) == []


def test_lines_the_user_added_to_a_created_config_are_backed_up_but_not_as_an_original(paths: Paths) -> None:
    connect(paths)
    with paths.user_config.open("ab") as config:
        config.write(b"\nHost added\n")
    with_lines = paths.user_config.read_bytes()
    forget(paths)
    assert [b.read_bytes() for b in kept_backups(paths.user_config)] == [with_lines]
    connect(paths)  # the config is the user's lines now; colabssh created the file: still no original
    assert not original_of(paths.user_config).exists() and len(backups_of(paths.user_config)) == 1


def test_an_install_with_many_backups_is_tidied_at_the_next_change(paths: Paths) -> None:
    """An earlier colabssh kept ten dated backups: the oldest becomes the original, the newest change's backup
    is the only dated one left. Files that only look alike are the user's: never touched."""
    oldest = dated(paths, "20240101T000000000000Z", USER)
    for day in range(2, 12):
        dated(paths, f"202401{day:02d}T000000000000Z", b"# an older run's backup %d\n" % day)
    dated(paths, "20240112T000000000000Z-2", b"# a second one that instant\n")
    theirs = {"config.colabssh-bak-mine": b"mine", "config.colabssh-bak-20240101T000000000000Z.txt": b"notes",
              "config.colabssh-original.old": b"old", "other.colabssh-bak-20240101T000000000000Z": b"other"}
    for name, data in theirs.items():
        (paths.ssh_dir / name).write_bytes(data)
    os.mkdir(paths.ssh_dir / "config.colabssh-bak-20230101T000000000000Z")  # a folder of that name
    os.symlink(paths.ssh_dir / "config.colabssh-bak-mine", paths.ssh_dir / "config.colabssh-bak-20220101T000000000000Z")
    paths.user_config.write_bytes(USER)
    written = connect(paths)
    assert original_of(paths.user_config).read_bytes() == USER and not oldest.exists()
    [latest] = backups_of(paths.user_config)
    assert latest in written and latest.read_bytes() == USER
    for name, data in theirs.items():
        assert (paths.ssh_dir / name).read_bytes() == data
    assert (paths.ssh_dir / "config.colabssh-bak-20230101T000000000000Z").is_dir()
    assert (paths.ssh_dir / "config.colabssh-bak-20220101T000000000000Z").is_symlink()


def test_an_oldest_backup_of_a_config_colabssh_created_is_not_an_original(paths: Paths) -> None:
    created = dated(paths, "20240101T000000000000Z", CREATED_NOTE.encode() + b"\nHost added\n")
    dated(paths, "20240102T000000000000Z", b"Host added\n")
    paths.user_config.write_bytes(b"Host added\n")
    connect(paths)
    assert not original_of(paths.user_config).exists() and not created.exists()
    assert [b.read_bytes() for b in kept_backups(paths.user_config)] == [b"Host added\n"]


def test_a_connect_undone_after_a_failed_check_keeps_the_files_and_adds_no_backup(isolated_home: Path) -> None:
    def refused() -> None:
        raise ColabsshError("the login was refused", "")

    short = Path(tempfile.mkdtemp(prefix="h", dir="/tmp"))  # short enough for the sockets' folder in ~/.ssh
    try:
        _undo_keeps_no_new_backup(Paths(short), refused)
    finally:
        shutil.rmtree(short)


def _undo_keeps_no_new_backup(paths: Paths, refused: Callable[[], None]) -> None:
    from colabssh_cli.connection.commit import apply_and_verify

    paths.ssh_dir.mkdir(mode=0o700)
    paths.user_config.write_bytes(USER)
    with pytest.raises(ColabsshError) as caught:
        apply_and_verify(paths, entry(paths, control_dir=paths.control_dir), KEY_A, refused)
    assert caught.value.hint == "colabssh put its files back as they were"
    assert paths.user_config.read_bytes() == USER and beside(paths) == ["config"]  # no original: nothing changed
    assert sorted(os.listdir(paths.root)) == []  # no config, pin, socket folder or lock
    connect(paths)
    forget(paths)
    before = kept_backups(paths.user_config)
    with pytest.raises(ColabsshError):
        apply_and_verify(paths, entry(paths, control_dir=paths.control_dir), KEY_A, refused)
    after = kept_backups(paths.user_config)
    assert after[0] == before[0] and [b.read_bytes() for b in after] == [USER, USER]  # the change's own backup
    assert paths.user_config.read_bytes() == USER


@pytest.mark.slow  # forks and SIGKILLs a child at every write
@pytest.mark.parametrize("argv", [["connect", "--no-open", "--no-check", "CODE"], ["forget", "other"]])
def test_a_kill_at_any_write_leaves_the_config_whole_and_its_earlier_bytes_backed_up(
        isolated_home: Path, client_key: str, tmp_path: Path, argv: list[str]) -> None:
    """An install with the original and one dated backup, the config edited since: a connect (or forget) killed
    at each of its writes in turn leaves the config old or new, whole, a backup of the bytes it had whenever it
    holds the new ones, and the next run leaves exactly the original and one dated backup."""
    from colabssh_cli.app import main
    from tests.cli.sshconfig.test_repair import CODE_A, CODE_B, run_killed_at

    argv = [CODE_A if arg == "CODE" else arg for arg in argv]
    paths = Paths.from_env()
    paths.user_config.write_bytes(USER)
    paths.user_config.chmod(0o600)
    assert main(["connect", "--no-open", "--no-check", "--name", "other", CODE_B]) == 0
    if argv[0] == "connect":
        assert main(["forget", "other"]) == 0
    with paths.user_config.open("ab") as config:
        config.write(b"\r\nHost later\r\n")  # the user's edit since: the bytes a new backup must hold
    pristine = tmp_path / "pristine"
    shutil.copytree(isolated_home, pristine, symlinks=True)
    before = paths.user_config.read_bytes()
    n = 0
    while True:
        n += 1
        shutil.rmtree(isolated_home)
        shutil.copytree(pristine, isolated_home, symlinks=True)
        killed = run_killed_at(n, argv)
        now = paths.user_config.read_bytes()
        kept = [b.read_bytes() for b in kept_backups(paths.user_config)]
        assert kept and kept[0] == USER  # the original, whatever instant the kill came
        if now != before:
            assert before in kept, n  # the config's earlier bytes were safe before it changed
        ssh_g(paths.user_config, "mine")  # whole: OpenSSH reads it
        main(argv)  # the next run (exit 2 for a forget the killed one finished)
        kept = [b.read_bytes() for b in kept_backups(paths.user_config)]
        assert kept == [USER, before], n
        if not killed:
            break
        assert n < 500, "no end to the writes"
    assert n > 10
