"""`colabssh doctor`'s checks of this machine: the ssh client, colabssh's key, ~/.ssh/config, the session list."""

from __future__ import annotations

import pytest

from colabssh_cli.diagnosis import FAIL, OK, WARN, judge_ssh_version
from colabssh_cli.errors import FAILURE
from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import close_shared_connection
from colabssh_cli.sshconfig.render import BEGIN_MARKER, END_MARKER
from tests.cli.connection.test_flow_e2e import close_masters_after, user_ssh  # noqa: F401  (fixtures)
from tests.fakes import new_key

from . import assert_fixable, doctor


@pytest.mark.parametrize(("banner", "status"), [
    ("OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 27 Jan 2026", OK),
    ("OpenSSH_for_Windows_8.6p1, LibreSSL 3.4.3", OK),
    ("OpenSSH_8.0p1, OpenSSL 1.1.1k  FIPS 25 Mar 2021", OK),
    ("OpenSSH_7.4p1, OpenSSL 1.0.2k-fips  26 Jan 2017", WARN),
    ("OpenSSH_7.2p2 Ubuntu-4ubuntu2.10, OpenSSL 1.0.2g  1 Mar 2016", FAIL),
    ("OpenSSH_6.6.1p1 Ubuntu-2ubuntu2.13, OpenSSL 1.0.1f 6 Jan 2014", FAIL),
    ("Dropbear v2022.83", FAIL),
    ("", FAIL),
])
def test_the_ssh_client_version_is_judged_by_what_colabssh_needs(banner, status):
    check = judge_ssh_version(banner)
    assert check.status == status, check
    if status != OK:
        assert check.fix and ("7.3" in check.detail or "not OpenSSH" in check.detail)


def test_no_ssh_client_is_a_failure_with_the_install_hint(capsys, monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, checks, err = doctor(capsys)
    assert code == FAILURE
    assert_fixable(checks["ssh client"], FAIL, "not on PATH", "openssh-client")
    assert err == ("colabssh: error: doctor found 1 problem: ssh client\n"
                   "  hint: each failed check says how to fix it (`fix` in the JSON)\n")


def test_a_readable_key_and_a_foreign_public_half_are_failures(client_key, capsys, tmp_path):
    paths = Paths.from_env()
    paths.key.chmod(0o640)
    _, checks, _ = doctor(capsys)
    assert_fixable(checks["colabssh key"], FAIL, "mode 0640", f"chmod 600 {paths.key}")
    paths.key.chmod(0o600)
    other = new_key(tmp_path / "keys")
    paths.public_key.write_text(other.with_suffix(".pub").read_text())
    code, checks, _ = doctor(capsys)
    assert code == FAILURE
    assert_fixable(checks["colabssh key"], FAIL, "not the public half", "colabssh bootstrap")


def test_malformed_markers_are_reported_with_the_fix(client_key, capsys, isolated_home):
    config = isolated_home / ".ssh" / "config"
    config.write_text(f"{BEGIN_MARKER}\nHost x\n{BEGIN_MARKER}\n{END_MARKER}\n")
    config.chmod(0o600)
    code, checks, _ = doctor(capsys)
    assert code == FAILURE
    assert_fixable(checks["ssh config"], FAIL, "more than one colabssh start marker (line 1, line 3)",
                   "keep exactly one colabssh block")


def test_a_line_of_the_users_inside_the_block_is_named(connected, capsys):
    config = connected.paths.user_config
    lines = config.read_text().splitlines(keepends=True)
    config.write_text("".join(lines[:2] + ["  ForwardAgent yes\n"] + lines[2:]))
    _, checks, _ = doctor(capsys)
    assert_fixable(checks["ssh config"], FAIL, "line 3 is inside colabssh's block", "ForwardAgent yes",
                   "move your line")


def test_a_session_without_its_block_in_the_users_config(connected, capsys):
    config = connected.paths.user_config
    close_shared_connection(connected.paths, "colab")  # the config that names its socket is about to go
    config.write_text("Host example\n  HostName example.org\n")
    code, checks, _ = doctor(capsys)
    assert code == FAILURE
    assert_fixable(checks["ssh config"], FAIL, "has no colabssh block", "colabssh connect CODE")


def test_an_included_file_others_may_write_is_refused_by_ssh_and_named(connected, capsys):
    own = connected.paths.config
    close_shared_connection(connected.paths, "colab")
    own.chmod(0o646)
    assert "Bad owner or permissions" in user_ssh(connected.paths.home, "colab", "true").stderr  # what ssh does
    code, checks, _ = doctor(capsys)
    assert code == FAILURE
    assert_fixable(checks["ssh config"], FAIL, f"{own} has mode 0646", f"chmod 600 {own}")
    assert checks["ssh -G colab"]["status"] == FAIL and checks["reach colab"]["status"] == FAIL


def test_a_damaged_session_list(client_key, capsys):
    Paths.from_env().sessions.write_text("{not json")
    code, checks, _ = doctor(capsys)
    assert code == FAILURE
    assert_fixable(checks["sessions"], FAIL, "is damaged", "colabssh forget")
