"""The remote seam against the printed cell's real sshd: OpenSSH through the user's config, shared connections."""

from __future__ import annotations

import socket
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from colabssh_cli.app import main
from colabssh_cli.comeback import notes
from colabssh_cli.errors import BAD_INPUT, FAILURE, UNREACHABLE, ColabsshError
from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import (
    Remote,
    close_shared_connection,
    control_command,
    explain_ssh_failure,
    shared_connection_alive,
)
from colabssh_cli.session import Session, record_session
from tests.cli.connection.test_flow_e2e import close_masters_after, stop_runtime  # noqa: F401  (a fixture)


def logins(runtime) -> int:
    """How many SSH logins the runtime's sshd has accepted (its log, LogLevel VERBOSE)."""
    return (runtime.state / "sshd.log").read_text(errors="replace").count("Accepted publickey")


def master_pid(connected) -> str:
    check = subprocess.run(["ssh", "-F", str(connected.paths.user_config), "-O", "check", connected.alias],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    return check.stderr.strip()  # "Master running (pid=N)"


def test_commands_share_one_connection(connected):
    remote = Remote.for_alias(None)
    assert remote.alias == "colab"
    close_shared_connection(connected.paths, "colab")
    assert not shared_connection_alive(connected.paths, "colab")
    before = logins(connected.runtime)
    assert remote.run("echo one").stdout == b"one\n"
    assert remote.shared_connection_alive()
    master = master_pid(connected)
    assert remote.run("echo two").stdout == b"two\n"
    assert remote.run("echo three").stdout == b"three\n"
    assert master_pid(connected) == master
    assert logins(connected.runtime) == before + 1  # one handshake for three commands


def test_run_gives_the_remote_exit_code_and_both_streams(connected):
    result = Remote.for_alias("colab").run("echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")


def test_a_command_missing_on_the_runtime_becomes_advice(connected):
    with pytest.raises(ColabsshError) as caught:
        Remote.for_alias("colab").run("no-such-command-colabssh")
    assert caught.value.exit_code == FAILURE
    assert "missing on the runtime" in caught.value.message and "re-run the cell" in caught.value.hint


def test_stream_hands_over_lines_as_they_come_and_stdin_goes_through(connected):
    out: list[str] = []
    err: list[str] = []
    code = Remote.for_alias("colab").stream("cat; echo done >&2; exit 5", input=b"a\nb\n",
                                            on_stdout=out.append, on_stderr=err.append)
    assert (code, out, err) == (5, ["a", "b"], ["done"])


def test_a_stream_past_its_timeout_is_stopped_and_said(connected):
    out: list[str] = []
    with pytest.raises(ColabsshError) as caught:
        Remote.for_alias("colab").stream("echo begun; sleep 30", on_stdout=out.append, timeout=2)
    assert caught.value.exit_code == UNREACHABLE and "did not answer within 2 s" in caught.value.message
    assert out == ["begun"]


def test_write_file_and_upload(connected, tmp_path: Path):
    remote = Remote.for_alias("colab")
    content = Path(connected.runtime.info.content)  # the local runtime shares this machine's disk
    data = bytes(range(256)) * 40
    remote.write_file(str(content / "by stdin.bin"), data, mode=0o600)
    assert (content / "by stdin.bin").read_bytes() == data
    assert stat.S_IMODE((content / "by stdin.bin").stat().st_mode) == 0o600
    assert not list(content.glob("*.colabssh-tmp"))
    local = tmp_path / "local file.txt"
    local.write_bytes(b"uploaded\n" * 1000)
    remote.upload(local, str(content / "uploaded.txt"))
    assert (content / "uploaded.txt").read_bytes() == local.read_bytes()
    with pytest.raises(ColabsshError) as caught:
        remote.write_file("/nonexistent-dir/x", b"x")
    assert "could not write /nonexistent-dir/x" in caught.value.message


def test_a_dead_runtime_becomes_advice_with_exit_code_3(connected):
    close_shared_connection(connected.paths, "colab")
    stop_runtime(connected.runtime)
    with pytest.raises(ColabsshError) as caught:
        Remote.for_alias("colab").run("true")
    assert caught.value.exit_code == UNREACHABLE
    assert "re-run the cell" in caught.value.hint


def test_a_changed_host_key_is_explained(connected):
    close_shared_connection(connected.paths, "colab")
    known = connected.paths.known_hosts
    other = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(known.parent / "x")],
                           capture_output=True)
    assert other.returncode == 0
    line = " ".join((known.parent / "x.pub").read_text().split()[:2])
    known.write_text(f"colabssh-colab {line}\n")
    with pytest.raises(ColabsshError) as caught:
        Remote.for_alias("colab").run("true")
    assert caught.value.exit_code == UNREACHABLE
    assert "not the one pinned" in caught.value.message


@pytest.mark.parametrize("code, stderr, says", [
    (255, "Permission denied (publickey).", "refused colabssh's key"),
    (255, "ssh: connect to host 0.tcp.ngrok.io port 1: Connection refused", "did not answer"),
    (255, "kex_exchange_identification: Connection closed by remote host", "did not answer"),
    (127, "bash: nvcc: command not found", "missing on the runtime"),
    (2, "ls: cannot access 'x'", "exit code 2"),
])
def test_exit_codes_become_advice(code: int, stderr: str, says: str):
    assert says in explain_ssh_failure("colab", code, stderr).message


def test_what_the_user_has_seen_is_pointed_at_not_quoted_again(isolated_home):
    refused = "ssh: connect to host 127.0.0.1 port 1: Connection refused"
    assert explain_ssh_failure("colab", 255, refused).message == f"colab: the runtime did not answer ({refused})"
    shown = explain_ssh_failure("colab", 255, refused, shown=True)
    assert shown.message == "colab: the runtime did not answer (ssh said why, above)" and "re-run" in shown.hint
    assert explain_ssh_failure("colab", 255, "", shown=True).message == "colab: the runtime did not answer (ssh failed)"
    changed = "Host key verification failed."
    assert "not the one pinned" in explain_ssh_failure("colab", 255, changed, shown=True).message
    reason = "no runtime of 'colab' answers (tried 127.0.0.1:1)"  # the relay's note, and its line on stderr
    notes.keep(Paths.from_env(), "colab", [reason, "hint: run the notebook"])
    assert explain_ssh_failure("colab", 255, "", shown=True).message == f"colab: {reason}"
    relayed = explain_ssh_failure("colab", 255, f"colabssh relay: {reason}", shown=True)
    assert (relayed.message, relayed.hint) == ("colab: the relay reached no runtime (it said why, above)",
                                               "run the notebook")


def test_a_sink_that_fails_neither_hangs_the_stream_nor_is_lost(connected):
    """A sink's exception used to end its pump thread: ssh then blocked on a full pipe and stream() never returned."""
    seen: list[str] = []

    def sink(line: str) -> None:
        seen.append(line)
        raise RuntimeError("the progress display broke")

    outcome: list[object] = []

    def call() -> None:
        try:  # far more than a pipe holds (64 KiB), so ssh must be drained to end
            outcome.append(Remote.for_alias("colab").stream("seq 1 200000; echo end >&2", on_stdout=sink))
        except RuntimeError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "stream() hung after its sink failed"
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError)
    assert str(outcome[0]) == "the progress display broke" and seen == ["1"]  # raised once ssh ended


def test_a_missing_ssh_config_says_to_connect_again(isolated_home, capsys):
    paths = Paths.from_env()
    record_session(paths, Session(alias="colab", host="127.0.0.1", port=2222, user="root", tunnel="local"))
    assert not paths.user_config.exists()  # removed by hand, or never written (a copied sessions.json)
    assert main(["status"]) == BAD_INPUT
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines == [f"colabssh: error: colab: ssh cannot open its config file {paths.user_config} "
                     "(No such file or directory)", lines[1]] and lines[1].startswith("  hint: ")
    assert "`colabssh connect`" in lines[1] and "colabssh doctor" in lines[1]
    assert "did not answer" not in captured.err and "re-run the cell" not in captured.err


def test_a_shared_connection_that_does_not_answer_is_a_failure_not_an_exception(isolated_home, tmp_path):
    """`ssh -O` against a master that hangs: exit 255 after the timeout, so no caller meets TimeoutExpired."""
    paths = Paths.from_env()
    folder = tmp_path / "cm"
    folder.mkdir()
    paths.ssh_dir.mkdir(mode=0o700, exist_ok=True)
    paths.user_config.write_text(f"Host hung\n  HostName 127.0.0.1\n  ControlPath {folder}/%C\n")
    control_path = subprocess.run(["ssh", "-G", "-F", str(paths.user_config), "hung"], capture_output=True,
                                  text=True, check=True).stdout
    socket_path = next(line.split(" ", 1)[1] for line in control_path.splitlines() if line.startswith("controlpath "))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as master:  # listens, never answers
        master.bind(socket_path)
        master.listen()
        done = control_command(paths, "hung", "check", timeout=1)
    assert done.returncode == 255 and "did not answer within 1 s" in done.stderr
