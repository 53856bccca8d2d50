"""`colabssh ssh` when ssh itself fails, end to end (the CLI as a process, real sshd and OpenSSH): the user sees
what ssh said as it said it, once, and colabssh's advice reads it: a runtime that shows another host key than the
pinned one is said to be so (directly, and through a Drive folder's relay), not taken for a dead tunnel; a dead
runtime's own line from ssh is shown once."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

from colab_bootstrap import conncode
from colabssh_cli.app import main
from colabssh_cli.comeback import notes
from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import close_shared_connection
from tests.cli.comeback.test_relay_runtime import put_code
from tests.cli.connection.test_flow_e2e import close_masters_after, stop_runtime  # noqa: F401  (a fixture)

HOST_KEY = "colabssh: error: colab: the runtime's host key is not the one pinned for this session"
HOST_KEY_HINT = ("  hint: if you restarted the runtime, run the cell again and `colabssh connect` the new code; "
                 "otherwise someone may be in the middle")


def colabssh_ssh(*args: str) -> subprocess.CompletedProcess[str]:
    """`colabssh ssh ARGS` as a process without a terminal; stdout and stderr as one text, as a terminal shows."""
    return subprocess.run([sys.executable, "-m", "colabssh_cli", "ssh", *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60,
                          env=dict(os.environ))


def pin_another_key(paths: Paths, folder: Path) -> None:
    """The session's pin becomes another key than the runtime's."""
    made = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "other")],
                          capture_output=True)
    assert made.returncode == 0
    line = " ".join((folder / "other.pub").read_text().split()[:2])
    alias = paths.known_hosts.read_text().split()[0]
    paths.known_hosts.write_text(f"{alias} {line}\n")


def test_another_host_key_is_said_to_be_so(connected, tmp_path) -> None:  # noqa: ANN001
    close_shared_connection(connected.paths, "colab")
    pin_another_key(connected.paths, tmp_path)
    done = colabssh_ssh("--", "true")
    assert done.returncode == 255, done.stdout
    lines = done.stdout.splitlines()
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in done.stdout  # ssh's own words, shown as they came
    assert lines[-2:] == [HOST_KEY, HOST_KEY_HINT], done.stdout
    assert "tunnel is down" not in done.stdout


def test_a_dead_runtimes_line_from_ssh_is_shown_once(connected) -> None:  # noqa: ANN001
    close_shared_connection(connected.paths, "colab")
    stop_runtime(connected.runtime)
    done = colabssh_ssh("--", "true")
    assert done.returncode == 255
    refused = re.findall(r"^.*Connection refused.*$", done.stdout, re.MULTILINE)
    assert refused == [f"ssh: connect to host 127.0.0.1 port {connected.runtime.info.port}: Connection refused"], \
        done.stdout
    assert done.stdout.count(str(connected.runtime.info.port)) == 1
    assert done.stdout.splitlines()[-2:] == [
        "colabssh: error: colab: the runtime did not answer (ssh said why, above)",
        "  hint: the tunnel is down or the runtime is gone: re-run the cell in Colab, then `colabssh connect` the "
        "new code"], done.stdout


def test_the_remote_commands_own_stderr_and_exit_code_pass_through(connected) -> None:  # noqa: ANN001
    done = colabssh_ssh("--", "printf 'no newline' >&2; echo out; exit 7")
    assert done.returncode == 7
    assert "no newline" in done.stdout and "out\n" in done.stdout and "colabssh: error" not in done.stdout


def test_through_the_relay_another_host_key_is_not_a_dead_tunnel(
        start_runtime, isolated_home, tmp_path, close_masters_after) -> None:  # noqa: ANN001, F811
    drive = tmp_path / "My Drive"
    drive.mkdir()
    first = start_runtime("local", where=tmp_path / "a")
    other = start_runtime("local", where=tmp_path / "b")
    assert main(["connect", first.code, "--no-open", "--drive-folder", str(drive)]) == 0
    close_shared_connection(Paths.from_env(), "colab")
    first.stop()
    # a code on Drive that claims the pinned key but points at another runtime (another key)
    put_code(drive, conncode.encode(conncode.ConnectionInfo(**{**first.info.__dict__, "port": other.info.port})))
    done = colabssh_ssh("--", "true")
    assert done.returncode == 255, done.stdout
    assert notes.found(Paths.from_env(), "colab") == f"127.0.0.1:{other.info.port}"  # the relay went there ...
    assert done.stdout.splitlines()[-2:] == [HOST_KEY, HOST_KEY_HINT], done.stdout  # ... and ssh refused its key
    assert "tunnel is down" not in done.stdout and "no runtime" not in done.stdout


def test_a_shell_on_a_terminal_still_works(connected) -> None:  # noqa: ANN001
    # a terminal for stdin, stdout and stderr, as a user's: ssh asks the runtime for one too (its stdin is a tty)
    main_end, user_end = pty.openpty()
    shell = subprocess.Popen([sys.executable, "-m", "colabssh_cli", "ssh"], stdin=user_end, stdout=user_end,
                             stderr=user_end, env=dict(os.environ), start_new_session=True)
    os.close(user_end)
    os.write(main_end, b"echo tty=$(tty | cut -c1-8) $((6*7)); exit 3\n")
    seen = b""
    while True:
        ready, _, _ = select.select([main_end], [], [], 30)
        assert ready, f"the session said nothing for 30 s: {seen!r}"
        try:
            chunk = os.read(main_end, 4096)
        except OSError:  # EIO: every holder of the terminal's other end has gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(main_end)
    assert shell.wait(timeout=30) == 3, seen
    assert b"tty=/dev/pts 42" in seen, seen
