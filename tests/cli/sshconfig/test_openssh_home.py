"""Plain OpenSSH finds `~` in the password database, colabssh in $HOME: when they differ, connect and doctor say so.

With HOME pointing elsewhere (sudo -E, CI, containers), colabssh's own commands (which give ssh -F) work while a
plain `ssh colab` and VS Code read another ~/.ssh/config and do not see the session. COLABSSH_OPENSSH_HOME stands
for the password database's home here (the tests never read the machine's real ~/.ssh).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from colabssh_cli.app import main
from colabssh_cli.paths import Paths
from colabssh_cli.sshconfig.openssh_home import openssh_home, plain_ssh_problem
from tests.runtime.test_conncode import base, code_of

CODE = code_of(base())


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client_key: str) -> Path:
    """The home OpenSSH reads: another folder than $HOME, with a config of its own."""
    home = tmp_path / "passwd-home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host work\n  HostName work.example\n")
    monkeypatch.setenv("COLABSSH_OPENSSH_HOME", str(home))
    return home


def test_connect_warns_when_plain_ssh_reads_another_config(elsewhere: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["connect", "--no-open", "--no-check", CODE]) == 0  # colabssh's own commands do work
    err = capsys.readouterr().err
    paths = Paths.from_env()
    theirs = elsewhere / ".ssh" / "config"
    assert f"colabssh: warning: plain `ssh colab` and VS Code do not see this session: OpenSSH reads {theirs}" in err
    assert f"add the line `Include {paths.config}` at the top of {theirs}" in err
    assert f"remote.SSH.configFile to {paths.user_config}" in err
    assert theirs.read_text() == "Host work\n  HostName work.example\n"  # never written


def test_doctor_fails_its_plain_ssh_check_then_passes_once_the_config_includes_colabssh(
        elsewhere: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["connect", "--no-open", "--no-check", CODE]) == 0
    capsys.readouterr()
    main(["doctor", "--json"])
    plain = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}["plain ssh"]
    assert plain["status"] == "fail" and "OpenSSH reads" in plain["detail"] and "Include" in plain["fix"]
    paths = Paths.from_env()
    theirs = elsewhere / ".ssh" / "config"
    theirs.write_text(f"Include {paths.config}\n" + theirs.read_text())  # what the hint says to do
    main(["doctor", "--json"])
    plain = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}["plain ssh"]
    assert plain["status"] == "ok"


def test_an_include_below_a_host_line_does_not_count(elsewhere: Path) -> None:
    paths = Paths.from_env()
    theirs = elsewhere / ".ssh" / "config"
    theirs.write_text(f"Host work\n  HostName work.example\nInclude {paths.config}\n")  # applies to `work` only
    assert plain_ssh_problem(paths, "colab") is not None


def test_no_warning_when_both_are_the_same_file(isolated_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                client_key: str, capsys: pytest.CaptureFixture[str]) -> None:
    link = isolated_home.parent / "same-home"
    link.symlink_to(isolated_home)  # another path to the same folder is the same file
    monkeypatch.setenv("COLABSSH_OPENSSH_HOME", str(link))
    assert main(["connect", "--no-open", "--no-check", CODE]) == 0
    assert "colabssh: warning" not in capsys.readouterr().err


def test_without_the_override_the_password_database_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import pwd

    monkeypatch.delenv("COLABSSH_OPENSSH_HOME")
    assert openssh_home() == Path(pwd.getpwuid(os.getuid()).pw_dir)
