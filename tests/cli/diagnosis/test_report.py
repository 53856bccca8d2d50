"""`colabssh doctor` as a whole: the report, its exit code and its table."""

from __future__ import annotations

from colabssh_cli.app import main
from colabssh_cli.diagnosis import OK, SKIP, WARN
from colabssh_cli.errors import FAILURE
from tests.cli.connection.test_flow_e2e import close_masters_after, code_cli  # noqa: F401  (fixtures)

from . import assert_fixable, doctor


def test_a_fresh_machine_has_nothing_to_fix(capsys):
    code, checks, err = doctor(capsys)
    assert code == 0 and err == ""
    assert checks["ssh client"]["status"] == OK and "OpenSSH 9" in checks["ssh client"]["detail"]
    assert checks["colabssh key"]["status"] == SKIP
    assert checks["ssh config"]["status"] == OK and checks["sessions"]["status"] == OK


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
