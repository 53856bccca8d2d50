"""`--via colab-cli` when something is wrong: each case one line, its fix, its exit code, and no file written.

The failures come from the stand-in `colab` (tests/standins/colab), which prints the real CLI's texts on stderr
and exits as it does; colabssh reads them in its pre-flight (paramiko over colab's stdin/stdout) and in ssh's
stderr (the remote seam), and for a runtime that is really held, the stand-in's lock answers 429.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from colabssh_cli.app import main
from colabssh_cli.connection import colab_cli
from colabssh_cli.errors import BAD_INPUT, MISSING_TOOL, UNREACHABLE
from colabssh_cli.paths import Paths
from colabssh_cli.remote import advice as colab_cli_errors
from colabssh_cli.remote.runner import close_shared_connection
from tests.cli.connection.test_colab_cli import ColabRoad, colab_on_path, colab_road, running_runtimes, via_colab  # noqa: F401
from tests.cli.connection.test_flow_e2e import close_masters_after  # noqa: F401  (fixture)

CONFIG_FILES = (".ssh/config", ".ssh/colabssh/config", ".ssh/colabssh/known_hosts", ".ssh/colabssh/sessions.json")


def config_files(home: Path) -> dict[str, bytes]:
    return {name: (home / name).read_bytes() for name in CONFIG_FILES if (home / name).exists()}


def one_error(err: str) -> tuple[str, str]:
    """The one error line and its hint, the last two lines of stderr (progress may come before); no traceback."""
    lines = err.splitlines()
    assert "Traceback" not in err
    errors = [i for i, line in enumerate(lines) if line.startswith("colabssh: error: ")]
    assert len(errors) == 1 and errors[0] == len(lines) - 2 and lines[-1].startswith("  hint: "), err
    return lines[-2], lines[-1]


def hold_runtime(road: ColabRoad, home: Path) -> subprocess.Popen[bytes]:
    """Another client holding the road's runtime: the stand-in itself, connected (the sshd's banner has come)."""
    key = home / ".ssh" / "colabssh" / "id_ed25519"
    holder = subprocess.Popen([str(road.exe), "ssh", "--proxy-mode", "-s", road.session, "-i", str(key)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert holder.stdout is not None
    line = holder.stdout.readline()
    while line and not line.startswith(b"SSH-"):  # colab's update notice comes first, on the same stream
        line = holder.stdout.readline()
    assert line.startswith(b"SSH-2.0-")
    return holder


def release(holder: subprocess.Popen[bytes]) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(timeout=30)


# ---- arguments ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, expected", [
    (["--via", "colab-ssh"], "unknown road 'colab-ssh' for --via"),
    (["--via", "colab-cli", "colabssh1:abc"], "CODE cannot be combined with --via colab-cli"),
    (["--via", "colab-cli", "--host", "0.tcp.ngrok.io", "--port", "1"], "--host, --port cannot be combined"),
    (["--session", "train"], "--session and --gpu belong to `--via colab-cli`"),
    (["--via", "colab-cli", "--gpu", "V100"], "unknown GPU 'V100'"),
    (["--via", "colab-cli", "--session", "my run"], "the colab session name 'my run' is not allowed"),
    (["--via", "colab-cli", "--name", "-bad"], "the alias '-bad' is not allowed"),
])
def test_bad_arguments_are_refused_before_anything_happens(argv, expected, tmp_path, monkeypatch, isolated_home,
                                                           capsys):
    _, state = colab_on_path(tmp_path, monkeypatch)
    assert main(["connect", "--no-open", *argv]) == BAD_INPUT
    line, _ = one_error(capsys.readouterr().err)
    assert expected in line
    assert config_files(isolated_home) == {} and not (state / "calls.jsonl").exists()


# ---- the pre-flight: colab's own failures -------------------------------------------------------------------


def test_no_colab_cli_is_exit_4_with_how_to_install(monkeypatch, isolated_home, capsys):
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                               if not (Path(p) / "colab").exists()))
    assert main(["connect", "--via", "colab-cli", "--no-open"]) == MISSING_TOOL
    line, hint = one_error(capsys.readouterr().err)
    assert "Google's `colab` CLI is not installed on this machine" in line
    assert "pip install google-colab-cli" in hint and "Python 3.12 or newer" in hint and "Linux or macOS" in hint
    assert config_files(isolated_home) == {}


def test_a_colab_cli_without_ssh_is_exit_4_with_the_upgrade(tmp_path, monkeypatch, isolated_home, capsys):
    colab_on_path(tmp_path, monkeypatch)
    monkeypatch.setenv("FAKE_COLAB_VERSION", "0.6.0")  # PyPI 0.6.0 had no `colab ssh`
    assert main(["connect", "--via", "colab-cli", "--no-open"]) == MISSING_TOOL
    line, hint = one_error(capsys.readouterr().err)
    assert "google-colab-cli before 0.7" in line and "pip install -U google-colab-cli" in hint
    assert config_files(isolated_home) == {}


@pytest.mark.parametrize("failure, code, line_has, hint_has", [
    ("404", UNREACHABLE, "the runtime of colab session 'colab' has no SSH (HTTP 404)",
     "SSH is baked in at creation, so run `colab new`"),
    ("400-key", BAD_INPUT, "RSA keys are not accepted", "use an ed25519 key"),
    ("400", BAD_INPUT, "Colab refused the SSH key that colab sent (HTTP 400)", "ssh-keygen -y -f KEY"),
    ("401", UNREACHABLE, "(HTTP 401)", "colab sessions"),
    ("403", UNREACHABLE, "(HTTP 403)", "paid plan"),
    ("502", UNREACHABLE, "its sshd does not answer (HTTP 502)", "colab status -s colab"),
    ("network", UNREACHABLE, "could not reach Colab", "network"),
])
def test_each_refusal_of_colab_is_explained_and_nothing_is_written(failure, code, line_has, hint_has, tmp_path,
                                                                    monkeypatch, isolated_home, capsys):
    exe, state = colab_on_path(tmp_path, monkeypatch)
    monkeypatch.setenv("FAKE_COLAB_FAIL", failure)
    assert main(["connect", "--via", "colab-cli", "--no-open"]) == code
    err = capsys.readouterr().err
    line, hint = one_error(err)
    assert line_has in line and hint_has in hint
    assert config_files(isolated_home) == {}
    assert "refused" in (state / "calls.jsonl").read_text()  # colab really was asked, and said no
    # colab created session 'colab' for this connect before it was refused: connect stopped that runtime again
    assert "stopped the runtime of colab session 'colab'" in err
    assert running_runtimes(exe) == []


def test_a_runtime_held_by_another_connection_is_429(colab_road, isolated_home, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setattr(colab_cli, "BUSY_RETRY_DELAYS", (0.01,))
    holder = hold_runtime(colab_road, isolated_home)
    try:
        assert main(colab_road.connect_argv()) == UNREACHABLE
    finally:
        release(holder)
    line, hint = one_error(capsys.readouterr().err)
    assert "is taken by another SSH connection (HTTP 429: Colab allows one per runtime)" in line
    assert "close the other one" in hint
    assert len(colab_road.events("refused-429")) == 2  # asked again once, after the short back-off
    assert config_files(isolated_home) == {}


# ---- the remote seam: ssh's stderr --------------------------------------------------------------------------


def test_status_explains_a_runtime_held_elsewhere(via_colab, isolated_home, capsys):  # noqa: F811
    assert close_shared_connection(Paths.from_env(), "colab")
    via_colab.wait_until_free()
    holder = hold_runtime(via_colab, isolated_home)
    try:
        assert main(["status"]) == UNREACHABLE
    finally:
        release(holder)
    captured = capsys.readouterr()
    assert f"colab: unreachable (colab-cli:{via_colab.session})" in captured.out
    line, hint = one_error(captured.err)
    assert f"colab: the runtime of colab session '{via_colab.session}' is taken by another SSH connection (HTTP 429" \
        in line
    assert "close the other one" in hint


def test_demo_explains_a_runtime_without_ssh(via_colab, monkeypatch, capsys):  # noqa: F811
    assert close_shared_connection(Paths.from_env(), "colab")
    via_colab.wait_until_free()
    monkeypatch.setenv("FAKE_COLAB_FAIL", "404")
    assert main(["demo"]) == UNREACHABLE
    line, hint = one_error(capsys.readouterr().err)
    assert "has no SSH (HTTP 404)" in line and "SSH is baked in at creation, so run `colab new`" in hint


def test_a_user_chosen_rsa_key_is_refused_with_the_fix(via_colab, isolated_home, capsys):  # noqa: F811
    assert close_shared_connection(Paths.from_env(), "colab")
    via_colab.wait_until_free()
    key = isolated_home / ".ssh" / "colabssh" / "id_ed25519"
    for path in (key, key.with_suffix(".pub")):
        path.unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(key)], check=True)
    assert main(["status"]) == BAD_INPUT
    line, hint = one_error(capsys.readouterr().err)
    assert "Colab refused the SSH key: RSA keys are not accepted (HTTP 400" in line
    assert "ssh-keygen -t ed25519" in hint
    assert via_colab.events("refused-400-key")[-1]["pubkey"].startswith("ssh-rsa ")


def test_a_key_the_runtime_was_not_given_is_explained(via_colab, isolated_home, capsys):  # noqa: F811
    # the stand-in, unlike Colab's server, does not install the key it sends: a new colabssh key is refused
    assert close_shared_connection(Paths.from_env(), "colab")
    via_colab.wait_until_free()
    key = isolated_home / ".ssh" / "colabssh" / "id_ed25519"
    for path in (key, key.with_suffix(".pub")):
        path.unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    assert main(["status"]) == UNREACHABLE
    line, hint = one_error(capsys.readouterr().err)
    assert f"colab: the runtime behind colab session '{via_colab.session}' refused colabssh's key" in line
    assert f"colabssh connect --via colab-cli --session {via_colab.session} --name colab" in hint


def test_a_colab_cli_gone_since_connect_is_exit_4(via_colab, capsys):  # noqa: F811
    assert close_shared_connection(Paths.from_env(), "colab")
    via_colab.wait_until_free()
    via_colab.exe.unlink()
    assert main(["status"]) == MISSING_TOOL
    line, hint = one_error(capsys.readouterr().err)
    assert "the `colab` CLI that this session's ProxyCommand runs is gone" in line
    assert "pip install google-colab-cli" in hint
    assert f"colabssh connect --via colab-cli --session {via_colab.session} --name colab" in hint


# ---- texts of other google-colab-cli versions ---------------------------------------------------------------


@pytest.mark.parametrize("text, has", [
    ("[colab] SSH not exposed on this runtime — SSH is baked in at creation, so run `colab new`", "HTTP 404"),
    ("Please visit this URL to authorize: https://accounts.google.com/o/oauth2/auth?x=1", "log in to Google first"),
    ("[colab] session 'x' not found. Run `colab sessions` to list active sessions.", "knows no session"),
    ("[colab] --identity /k: file not found.", "could not read the SSH key"),
])
def test_other_versions_texts_are_recognised(text, has):
    error = colab_cli_errors.explain_colab_stderr(text, "x")
    assert error is not None and has in error.message
    unrelated = "kex_exchange_identification: Connection closed by remote host"
    assert colab_cli_errors.explain_colab_stderr(unrelated, "x") is None


def test_advice_is_a_function_of_what_was_said_and_reads_no_file(isolated_home):
    """explain_ssh_stderr takes the session and colab's log as arguments: no session store, no log, no HOME."""
    from colabssh_cli.session import Session, Transport

    runtime = Session(alias="gpu", host="work.colab-cli.invalid", port=22, user="root", tunnel=Transport.COLAB_CLI,
                        extra={"session": "work"})
    error = colab_cli_errors.explain_ssh_stderr("gpu", "kex_exchange_identification: Connection closed", runtime,
                                                "[colab] Error: HTTP 404 /colab/ssh endpoint\n")
    assert error is not None and error.message == "gpu: the runtime of colab session 'work' has no SSH (HTTP 404)"
    assert not (isolated_home / ".ssh").exists()
    tunnel = Session(alias="colab", host="h", port=1, user="root", tunnel=Transport.NGROK)
    assert colab_cli_errors.explain_ssh_stderr("colab", "Connection refused", tunnel, "") is None
    assert colab_cli_errors.explain_ssh_stderr("colab", "Connection refused") is None
    said = colab_cli_errors.explain_ssh_stderr("colab", "[colab] Error: HTTP 429 too many", None, "")
    assert said is not None and "HTTP 429" in said.message


def test_a_colab_cli_failure_the_user_has_seen_is_pointed_at_not_quoted(isolated_home):
    from colabssh_cli.session import Session, Transport

    runtime = Session(alias="gpu", host="work.colab-cli.invalid", port=22, user="root", tunnel=Transport.COLAB_CLI,
                      extra={"session": "work"})
    line = "kex_exchange_identification: Connection closed by remote host"
    quoted = colab_cli_errors.explain_ssh_stderr("gpu", line, runtime, "")
    assert quoted is not None and quoted.message == f"gpu: the runtime did not answer through `colab ssh` ({line})"
    shown = colab_cli_errors.explain_ssh_stderr("gpu", line, runtime, "", shown=True)
    assert shown is not None and line not in shown.message and shown.message.endswith("(ssh said why, above)")
    assert shown.hint == quoted.hint
