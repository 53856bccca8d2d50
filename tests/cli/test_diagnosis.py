"""`colabssh doctor`: each check against the real thing (OpenSSH's ssh -G and login, the printed cell's sshd),
with stand-ins only for the editor CLI and cloudflared."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from colabssh_cli.app import main
from colabssh_cli.diagnosis import FAIL, OK, SKIP, WARN, judge_ssh_version
from colabssh_cli.errors import FAILURE
from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import close_shared_connection
from colabssh_cli.sshconfig.render import BEGIN_MARKER, END_MARKER
from tests.cli.connection.test_colab_cli import colab_road, via_colab  # noqa: F401  (fixtures)
from tests.cli.connection.test_flow_e2e import (  # noqa: F401  (fixtures)
    close_masters_after,
    cloudflared_env,
    code_cli,
    stop_runtime,
    user_ssh,
)
from tests.fakes import new_key


def doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict[str, str]], str]:
    """Run `colabssh doctor --json`; (exit code, the checks by name, stderr)."""
    capsys.readouterr()
    code = main(["doctor", "--json"])
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    checks = {check["name"]: check for check in document["checks"]}
    assert document["ok"] == (code == 0) == all(c["status"] != FAIL for c in checks.values())
    return code, checks, captured.err


def assert_fixable(check: dict[str, str], status: str, *words: str) -> None:
    assert check["status"] == status, check
    assert check["fix"], check
    for word in words:
        assert word in check["detail"] + " " + check["fix"], (word, check)


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


def test_a_fresh_machine_has_nothing_to_fix(capsys):
    code, checks, err = doctor(capsys)
    assert code == 0 and err == ""
    assert checks["ssh client"]["status"] == OK and "OpenSSH 9" in checks["ssh client"]["detail"]
    assert checks["colabssh key"]["status"] == SKIP
    assert checks["ssh config"]["status"] == OK and checks["sessions"]["status"] == OK


def test_no_ssh_client_is_a_failure_with_the_install_hint(capsys, monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, checks, err = doctor(capsys)
    assert code == FAILURE
    assert_fixable(checks["ssh client"], FAIL, "not on PATH", "openssh-client")
    assert err == ("colabssh: error: doctor found 1 problem: ssh client\n"
                   "  hint: each failed check says how to fix it (`fix` in the JSON)\n")


def test_a_connected_session_passes_every_check(connected, code_cli, capsys):  # noqa: F811
    code, checks, err = doctor(capsys)
    assert code == 0, checks
    assert {name: c["status"] for name, c in checks.items()} == {
        "ssh client": OK, "colabssh files": OK, "plain ssh": OK, "colabssh key": OK, "ssh config": OK,
        "sessions": OK, "ssh -G colab": OK, "reach colab": OK,
        "editor code": OK, "editor cursor": OK, "editor codium": WARN}
    assert "mode 0600" in checks["colabssh key"]["detail"] and "SHA256:" in checks["colabssh key"]["detail"]
    assert "logged in at" in checks["reach colab"]["detail"]
    assert "ms-vscode-remote.remote-ssh" in checks["editor code"]["detail"]
    assert_fixable(checks["editor codium"], WARN, "codium --install-extension jeanp413.open-remote-ssh")
    assert "doctor: ssh colab true" in err  # progress on stderr


def test_the_table_names_each_check_and_its_fix(connected, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    paths = connected.paths
    paths.key.chmod(0o644)
    capsys.readouterr()
    assert main(["doctor"]) == FAILURE
    out, err = capsys.readouterr()
    assert "colabssh key" in out and "fail" in out and f"fix: chmod 600 {paths.key}" in out
    assert err.endswith("colabssh: error: doctor found 1 problem: colabssh key\n"
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


def test_a_setting_above_the_block_that_wins_is_named(connected, capsys):
    """ssh takes the first value: a `Host *` above colabssh's block overrides the session (real `ssh -G`)."""
    config = connected.paths.user_config
    close_shared_connection(connected.paths, "colab")
    config.write_bytes(b"Host *\n  User alice\n\n" + config.read_bytes())
    code, checks, _ = doctor(capsys)
    assert code == FAILURE
    assert checks["ssh config"]["status"] == WARN and "below 2 setting line(s)" in checks["ssh config"]["detail"]
    assert_fixable(checks["ssh -G colab"], FAIL, "user: ssh uses alice, colabssh wrote root", "above colabssh's block")
    assert_fixable(checks["reach colab"], FAIL, "refused colabssh's key")


def test_an_included_file_others_may_write_is_refused_by_ssh_and_named(connected, capsys):
    own = connected.paths.config
    close_shared_connection(connected.paths, "colab")
    own.chmod(0o646)
    assert "Bad owner or permissions" in user_ssh(connected.paths.home, "colab", "true").stderr  # what ssh does
    code, checks, _ = doctor(capsys)
    assert code == FAILURE
    assert_fixable(checks["ssh config"], FAIL, f"{own} has mode 0646", f"chmod 600 {own}")
    assert checks["ssh -G colab"]["status"] == FAIL and checks["reach colab"]["status"] == FAIL


def test_a_stopped_runtime_is_unreachable(connected, capsys):
    stop_runtime(connected.runtime)
    close_shared_connection(connected.paths, "colab")
    code, checks, err = doctor(capsys)
    assert code == FAILURE
    assert checks["ssh -G colab"]["status"] == OK
    assert_fixable(checks["reach colab"], FAIL, "did not answer", "re-run the cell")
    assert "doctor found 1 problem: reach colab" in err


def test_a_damaged_session_list(client_key, capsys):
    Paths.from_env().sessions.write_text("{not json")
    code, checks, _ = doctor(capsys)
    assert code == FAILURE
    assert_fixable(checks["sessions"], FAIL, "is damaged", "colabssh forget")


def test_cloudflared_is_checked_for_a_session_that_goes_through_it(start_runtime, capsys, tmp_path,
                                                                  cloudflared_env):  # noqa: F811
    running = start_runtime("cloudflared", extra_env=cloudflared_env)
    assert main(["connect", running.code, "--no-open"]) == 0
    code, checks, _ = doctor(capsys)
    assert code == 0, checks
    assert "cloudflared version 2025.11.1" in checks["cloudflared (colab)"]["detail"]
    assert checks["reach colab"]["status"] == OK
    close_shared_connection(Paths.from_env(), "colab")
    (tmp_path / "cloudflared-bin" / "cloudflared").unlink()
    code, checks, _ = doctor(capsys)
    assert code == FAILURE
    assert_fixable(checks["cloudflared (colab)"], FAIL, "cloudflared is not installed here", "install cloudflared")
    assert_fixable(checks["reach colab"], FAIL)


def test_an_editor_that_cannot_list_its_extensions_is_not_blamed(code_cli, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setenv("FAKE_CODE_LIST_FAILS", "1")
    code, checks, _ = doctor(capsys)
    assert code == 0
    assert checks["editor code"]["status"] == OK and "not checked" in checks["editor code"]["detail"]


def test_no_editor_on_path_is_a_warning(capsys, monkeypatch):
    editors = ("code", "cursor", "codium")
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                               if not any((Path(p) / name).exists() for name in editors)))
    code, checks, _ = doctor(capsys)
    assert code == 0
    assert_fixable(checks["editor"], WARN, "no editor CLI on PATH", "Install code command in PATH")


def test_the_colab_cli_of_a_via_colab_cli_session_is_checked(via_colab, capsys):  # noqa: F811
    code, checks, _ = doctor(capsys)
    assert code == 0, checks
    assert checks["colab (colab)"]["status"] == OK and "0.7.5" in checks["colab (colab)"]["detail"]
    assert checks["reach colab"]["status"] == OK and checks["ssh -G colab"]["status"] == OK
    close_shared_connection(Paths.from_env(), "colab")
    via_colab.exe.unlink()
    code, checks, _ = doctor(capsys)
    assert code == FAILURE
    assert_fixable(checks["colab (colab)"], FAIL, "colab is not installed here", "pip install google-colab-cli")
