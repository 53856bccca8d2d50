"""`colabssh forget` says what it did to each file, and connect/forget leave ~/.ssh tidy: the user's original config
and the latest backup beside it, no lock file, no empty socket folder; a refused connect leaves nothing new.
The real CLI in a HOME short enough for ssh's sockets in ~/.ssh/colabssh/cm (so the machine's shared
/tmp/colabssh-<uid>, which other test runs use, is never this test's to remove)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from colabssh_cli.app import main
from colabssh_cli.errors import BAD_INPUT, UNREACHABLE
from colabssh_cli.paths import Paths
from colabssh_cli.sshconfig.backups import backups_of, kept_backups, original_of
from tests.cli.sshconfig.test_support import ssh_g
from tests.runtime.test_conncode import base, code_of

USER = b"Host mine\r\n  HostName example.org\r\n# caf\xe9"
CODE_A = code_of(base())
CODE_B = code_of(base(host="1.tcp.ngrok.io", port=2345))
KEY_FILES = ["id_ed25519", "id_ed25519.pub"]


@pytest.fixture
def home(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Paths]:
    short = Path(tempfile.mkdtemp(prefix="h", dir="/tmp"))
    monkeypatch.setenv("HOME", str(short))
    monkeypatch.setenv("COLABSSH_OPENSSH_HOME", str(short))
    yield Paths.from_env()
    shutil.rmtree(short)


def connect(*argv: str) -> None:
    assert main(["connect", "--no-open", "--no-check", *argv]) == 0


def everything(paths: Paths) -> list[str]:
    return sorted(str(p.relative_to(paths.home)) for p in paths.home.rglob("*"))


def test_five_connect_forget_cycles_leave_the_original_and_the_latest_backup(home: Paths) -> None:
    home.ssh_dir.mkdir(mode=0o700)
    home.user_config.write_bytes(USER)
    home.user_config.chmod(0o600)
    for _ in range(5):
        connect(CODE_A)
        connect("--name", "other", CODE_B)
        assert home.control_dir.is_dir() and not home.lock.exists()
        assert main(["forget", "other"]) == 0
        last = home.user_config.read_bytes()
        assert main(["forget", "colab"]) == 0
    [latest] = backups_of(home.user_config)
    assert original_of(home.user_config).read_bytes() == USER and latest.read_bytes() == last
    assert everything(home) == sorted([".ssh", ".ssh/colabssh", *(f".ssh/colabssh/{k}" for k in KEY_FILES),
                                       ".ssh/config", ".ssh/config.colabssh-original", f".ssh/{latest.name}"])
    assert home.user_config.read_bytes() == USER and ssh_g(home.user_config, "mine")["hostname"] == ["example.org"]


def test_forget_says_what_it_did_to_each_file(home: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    home.ssh_dir.mkdir(mode=0o700)
    home.user_config.write_bytes(USER)
    connect(CODE_A)
    connect("--name", "other", CODE_B)
    capsys.readouterr()
    assert main(["forget", "colab"]) == 0
    err = capsys.readouterr().err
    assert "wrote" not in err
    assert f"removed the Host colab block from {home.config}" in err
    assert f"removed the pinned host key of 'colab' from {home.known_hosts}" in err
    assert f"removed 'colab' from {home.sessions}" in err
    assert str(home.user_config) not in err  # the Include stays for 'other': ~/.ssh/config did not change
    assert main(["forget", "other"]) == 0
    err = capsys.readouterr().err
    [latest] = backups_of(home.user_config)
    assert f"kept the previous {home.user_config} in {latest}" in err
    assert f"removed {home.config} (the Host other block was its last)" in err
    assert f"removed {home.known_hosts} ('other' was its last pinned key)" in err
    assert f"removed colabssh's Include block from {home.user_config} (your own lines are as they were)" in err
    assert f"removed {home.sessions} ('other' was its last session)" in err
    assert f"removed the empty connection sharing folder {home.control_dir}" in err and not home.control_dir.exists()


def test_a_config_colabssh_created_goes_with_the_last_session_and_no_backup(home: Paths,
                                                                             capsys: pytest.CaptureFixture[str]
                                                                             ) -> None:
    for _ in range(2):
        connect(CODE_A)
        assert main(["forget", "colab"]) == 0
    assert f"removed {home.user_config} (colabssh had created it)" in capsys.readouterr().err
    assert kept_backups(home.user_config) == []
    assert everything(home) == sorted([".ssh", ".ssh/colabssh", *(f".ssh/colabssh/{k}" for k in KEY_FILES)])


def test_a_refused_connect_leaves_nothing_new_in_a_fresh_home(home: Paths) -> None:
    """Nothing answers at the code's address: the key colabssh needed for the login stays, and nothing else (no
    lock file, no socket folder, no config)."""
    refused = code_of(base(host="127.0.0.1", port=1))
    assert main(["connect", "--no-open", refused]) == UNREACHABLE
    assert everything(home) == sorted([".ssh", ".ssh/colabssh", *(f".ssh/colabssh/{k}" for k in KEY_FILES)])
    assert main(["connect", "--no-open", refused]) == UNREACHABLE
    assert main(["connect", "--no-open", "colabssh1:not-a-code"]) == BAD_INPUT
    assert main(["forget", "colab"]) == BAD_INPUT
    assert everything(home) == sorted([".ssh", ".ssh/colabssh", *(f".ssh/colabssh/{k}" for k in KEY_FILES)])


def test_a_login_the_runtime_refuses_leaves_nothing_new(runtime, home: Paths) -> None:  # type: ignore[no-untyped-def]
    """A real runtime, rendered for another key (the isolated home's): it refuses this home's new key."""
    assert main(["connect", "--no-open", runtime.code]) == UNREACHABLE
    assert everything(home) == sorted([".ssh", ".ssh/colabssh", *(f".ssh/colabssh/{k}" for k in KEY_FILES)])


def test_forget_of_a_near_miss_alias_names_the_recorded_one_and_changes_nothing(home: Paths, capsys) -> None:
    connect(CODE_A)
    before = {p: p.read_bytes() for p in home.ssh_dir.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["forget", "colb"]) == BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"colabssh: error: no session named 'colb' in {home.config}; did you mean 'colab'?\n"), err
    assert main(["forget", "zzz"]) == BAD_INPUT
    assert "did you mean" not in capsys.readouterr().err
    assert {p: p.read_bytes() for p in home.ssh_dir.rglob("*") if p.is_file()} == before


def test_a_command_makes_the_sharing_folder_again_when_it_is_gone(home: Paths) -> None:
    """ssh ends at once when its ControlPath's folder is missing (after a reboot, for /tmp/colabssh-<uid>, or once
    another home's forget removed it empty): the remote seam makes it again before ssh runs."""
    from colabssh_cli.remote.runner import Remote

    connect(CODE_A)
    home.control_dir.rmdir()
    Remote.for_alias("colab")
    assert home.control_dir.is_dir() and (home.control_dir.stat().st_mode & 0o777) == 0o700


def test_a_long_homes_own_folder_in_the_temp_folder_is_made_again_too(isolated_home: Path) -> None:
    """A home too long for sockets in ~/.ssh/colabssh/cm has its own folder under /tmp/colabssh-<uid>."""
    from colabssh_cli.remote.runner import Remote
    from colabssh_cli.sshconfig.render import control_dir_for, short_control_dir

    paths = Paths.from_env()
    connect(CODE_A)
    folder = control_dir_for(paths)
    assert folder.parent == short_control_dir() and folder.is_dir()  # this home's own, under the shared one
    folder.rmdir()
    Remote.for_alias("colab")
    assert folder.is_dir() and (folder.stat().st_mode & 0o777) == 0o700
    assert main(["forget", "colab"]) == 0
    assert not folder.exists()  # forget takes this home's folder with the last session
