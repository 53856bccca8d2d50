"""The connection sharing folders colabssh makes (``~/.ssh/colabssh/cm``, ``/tmp/colabssh-<uid>`` for a long home)
go when empty and no Host block names them; a folder that is not plainly colabssh's (a link, another user's, a
mode other than 0700, not a folder) or that holds anything stays. The short root is a private temp folder here:
the machine's /tmp/colabssh-<uid> belongs to every other test run of this user."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from colabssh_cli.paths import Paths
from colabssh_cli.sshconfig.render import (
    control_dir_for,
    control_dirs_in_use,
    remove_empty_control_dir,
    remove_unused_control_dirs,
    short_control_dir,
)
from tests.cli.sshconfig.test_support import KEY_A, KEY_B, connect, forget


@pytest.fixture
def short_root() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="cs", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_an_empty_private_folder_of_ours_goes_and_nothing_else_does(short_root: Path) -> None:
    ours = short_root / "ours"
    ours.mkdir(mode=0o700)
    assert remove_empty_control_dir(ours) and not ours.exists()
    busy = short_root / "busy"
    busy.mkdir(mode=0o700)
    (busy / "0123abcd").write_text("a socket's place")
    wide = short_root / "wide"
    wide.mkdir(mode=0o755)
    wide.chmod(0o755)
    foreign = short_root / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, os.geteuid() + 4242, -1)  # the tests run as root: a folder another user owns
    target = short_root / "target"
    target.mkdir(mode=0o700)
    link = short_root / "link"
    link.symlink_to(target)
    plain = short_root / "file"
    plain.write_text("")
    for kept in (busy, wide, foreign, link, plain, short_root / "missing"):
        assert not remove_empty_control_dir(kept), kept
    assert busy.is_dir() and wide.is_dir() and foreign.is_dir() and link.is_symlink() and target.is_dir()


def test_a_folder_a_host_block_names_stays_even_when_empty(isolated_home: Path, short_root: Path) -> None:
    paths = Paths(isolated_home)
    folder = short_root / "cm"
    connect(paths, control_dir=folder)
    connect(paths, "other", KEY_B, control_dir=folder)
    assert control_dirs_in_use(paths.config.read_bytes()) == {folder}
    assert remove_unused_control_dirs(paths, paths.config.read_bytes(), short_root) == [] and folder.is_dir()


def test_forget_of_the_last_session_removes_its_empty_folder(short_root: Path) -> None:
    """A home short enough for sockets in ~/.ssh/colabssh/cm: the folder goes with the last session."""
    paths = Paths(short_root / "h")
    paths.home.mkdir()
    connect(paths, control_dir=paths.control_dir)
    connect(paths, "other", KEY_B, control_dir=paths.control_dir)
    forget(paths)
    assert remove_unused_control_dirs(paths, paths.config.read_bytes()) == [] and paths.control_dir.is_dir()
    forget(paths, "other")
    assert remove_unused_control_dirs(paths, None) == [paths.control_dir] and not paths.control_dir.exists()


def test_a_long_homes_short_folder_goes_and_a_short_homes_never_touches_it(tmp_path: Path,
                                                                             short_root: Path) -> None:
    long_home = Paths(tmp_path / ("a-home-whose-path-is-too-long-for-a-socket" * 2))
    long_home.home.mkdir()
    shared = short_control_dir(short_root)
    own = control_dir_for(long_home, short_root=short_root)
    assert own.parent == shared
    connect(long_home, key=KEY_A, control_dir=own)
    short_home = Paths(short_root / "h")
    short_home.home.mkdir()
    assert remove_unused_control_dirs(short_home, None, short_root) == [] and own.is_dir()  # not its folder
    assert remove_unused_control_dirs(long_home, long_home.config.read_bytes(), short_root) == []  # named
    forget(long_home)
    assert remove_unused_control_dirs(long_home, None, short_root) == [own, shared] and not shared.exists()


def test_one_long_homes_forget_never_removes_the_folder_another_long_home_uses(tmp_path: Path,
                                                                              short_root: Path) -> None:
    """Two long homes of one user (two test runs, two checkouts' try): each has its own folder under the shared
    /tmp/colabssh-<uid>, so the first one's forget leaves the second's, and the shared parent, in place."""
    first, second = (Paths(tmp_path / (f"{n}-a-home-whose-path-is-too-long-for-a-socket" * 2)) for n in "ab")
    folders = []
    for home in (first, second):
        home.home.mkdir()
        folder = control_dir_for(home, short_root=short_root)
        connect(home, key=KEY_A, control_dir=folder)
        folders.append(folder)
    assert folders[0] != folders[1] and folders[0].parent == folders[1].parent == short_control_dir(short_root)
    forget(first)
    assert remove_unused_control_dirs(first, None, short_root) == [folders[0]]
    assert folders[1].is_dir() and short_control_dir(short_root).is_dir()
