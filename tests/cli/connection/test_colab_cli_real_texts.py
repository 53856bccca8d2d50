"""The stand-in `colab` against what the real google-colab-cli 0.7.5 prints, and colabssh reading those texts.

The REAL_* texts below were captured from google-colab-cli 0.7.5 (PyPI wheel, Python 3.12, no network, stderr not
a terminal). The stand-in must print the same, so that what colabssh is tested against is what users get: the
usage errors in rich boxes, `colab version` (there is no --version), the update notice on stdout, and a whole
close of the connection at stdin's end.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from colabssh_cli.connection import colab_bridge
from colabssh_cli.diagnosis import FAIL, OK, proxy_check
from colabssh_cli.errors import ColabsshError
from colabssh_cli.paths import Paths
from colabssh_cli.remote import advice as colab_cli_errors
from tests.cli.connection.test_colab_cli import colab_on_path

REAL_VERSION = "Version: 0.7.5\n"  # `colab version`, on stdout
REAL_VERSION_FLAG = """Usage: colab [OPTIONS] COMMAND [ARGS]...
Try 'colab -h' for help.
╭─ Error ──────────────────────────────────────────────────────────────────────╮
│ No such option: --version                                                    │
╰──────────────────────────────────────────────────────────────────────────────╯
"""  # `colab --version`, on stderr, exit 2
REAL_NO_SUCH_COMMAND = """Usage: colab [OPTIONS] COMMAND [ARGS]...
Try 'colab -h' for help.
╭─ Error ──────────────────────────────────────────────────────────────────────╮
│ No such command 'nosuch'.                                                    │
╰──────────────────────────────────────────────────────────────────────────────╯
"""
REAL_MISSING_VALUE = """╭─ Error ──────────────────────────────────────────────────────────────────────╮
│ Option '-s' requires an argument.                                            │
╰──────────────────────────────────────────────────────────────────────────────╯
"""  # `colab ssh --proxy-mode -s`
REAL_LONG_OPTION = """Usage: colab ssh [OPTIONS]
Try 'colab ssh -h' for help.
╭─ Error ──────────────────────────────────────────────────────────────────────╮
│ No such option:                                                              │
│ --this-is-a-very-long-option-name-that-will-not-fit-in-the-box-at-all-no-rea │
│ lly                                                                          │
╰──────────────────────────────────────────────────────────────────────────────╯
"""
# the update notice (auto_update.announce_upgrade from maybe_show_cached_banner), on stdout, then `colab stop`'s answer
REAL_STOP_UNKNOWN = """
[colab] A new version of Colab CLI is available: 0.8.0 (current: 0.7.5)
[colab] Run 'colab update' to update.
[colab] To silence this check, set "enable_update_check": false in ~/.config/colab-cli/settings.json

[colab] Session 'foo' not found.
"""
# a crash (no network while creating a session): typer's pretty traceback, its source boxes cut here
REAL_CRASH = (  # rich keeps the space it wraps the exception at: those lines end with one
    "[colab] Creating runtime 'foo'...\n"
    "[colab] Creating session 'foo'...\n"
    "╭───────────────────── Traceback (most recent call last) ──────────────────────╮\n"
    "│ /tmp/colabcli-venv/lib/python3.12/site-packages/urllib3/connection.py:239 in │\n"
    "│ _new_conn                                                                    │\n"
    "╰──────────────────────────────────────────────────────────────────────────────╯\n"
    "ConnectionError: HTTPSConnectionPool(host='colab.research.google.com', \n"
    "port=443): Max retries exceeded with url: \n"
    "/tun/m/assign?nbh=26e84645_e9f7_472b_924b_718ca4e55dc8........&variant=DEFAULT&a\n"
    "ccelerator=NONE&authuser=0 (Caused by \n"
    "NameResolutionError(\"HTTPSConnection(host='colab.research.google.com', \n"
    "port=443): Failed to resolve 'colab.research.google.com' ([Errno -2] Name or \n"
    "service not known)\"))\n"
)


@pytest.fixture
def exe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    found, _ = colab_on_path(tmp_path, monkeypatch)
    return found


def run(exe: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)


# ---- the stand-in prints what the real CLI prints -----------------------------------------------------------


@pytest.mark.parametrize("args, code, stdout, stderr", [
    (["version"], 0, REAL_VERSION, ""),
    (["--version"], 2, "", REAL_VERSION_FLAG),
    (["nosuch"], 2, "", REAL_NO_SUCH_COMMAND),
    (["stop", "-s", "foo"], 0, REAL_STOP_UNKNOWN, ""),
])
def test_the_stand_in_prints_what_the_real_cli_prints(exe, args, code, stdout, stderr):
    done = run(exe, *args)
    assert (done.returncode, done.stdout, done.stderr) == (code, stdout, stderr)


def test_a_missing_option_value_is_boxed_after_the_update_notice(exe):
    done = run(exe, "ssh", "--proxy-mode", "-s")
    assert done.returncode == 2 and done.stderr == REAL_MISSING_VALUE
    assert done.stdout.startswith("\n[colab] A new version of Colab CLI is available")  # the callback ran first


@pytest.fixture
def silent_runtime() -> Iterator[socket.socket]:
    """A 'runtime' that accepts and never closes on its own: only colab can end the connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(30)
    yield server
    server.close()


def test_the_stand_in_closes_the_whole_connection_at_stdins_end(exe, silent_runtime, client_key, monkeypatch):
    monkeypatch.setenv("FAKE_COLAB_PORT", str(silent_runtime.getsockname()[1]))
    key = Paths.from_env().key
    colab = subprocess.Popen([str(exe), "ssh", "--proxy-mode", "-s", "eof", "-i", str(key)], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        runtime_side, _ = silent_runtime.accept()  # colab has bridged to the runtime
        with runtime_side:
            assert colab.stdin is not None
            colab.stdin.close()  # what OpenSSH or colabssh does when it is done
            assert colab.wait(timeout=10) == 0  # the real CLI closes its WebSocket and exits
            runtime_side.settimeout(10)
            assert runtime_side.recv(1) == b""  # and the runtime's side sees the connection closed
    finally:
        if colab.poll() is None:
            colab.kill()
            colab.wait()


# ---- colabssh reads colab's words, not its boxes -----------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    (REAL_VERSION_FLAG, "No such option: --version"),
    (REAL_MISSING_VALUE, "Option '-s' requires an argument."),
    (REAL_LONG_OPTION,
     "No such option: --this-is-a-very-long-option-name-that-will-not-fit-in-the-box-at-all-no-really"),
    (REAL_CRASH, "ConnectionError: HTTPSConnectionPool(host='colab.research.google.com', port=443): Max retries "
                 "exceeded with url: /tun/m/assign?nbh=26e84645_e9f7_472b_924b_718ca4e55dc8........&variant=DEFAULT"
                 "&accelerator=NONE&authuser=0 (Caused by NameResolutionError(\"HTTPSConnection(host="
                 "'colab.research.google.com', port=443): Failed to resolve 'colab.research.google.com' ([Errno -2] "
                 "Name or service not known)\"))"),
    ("[colab] Creating runtime 'x'...\n[colab] session 'x' not found. Run `colab sessions`.\n",
     "session 'x' not found. Run `colab sessions`."),
])
def test_colabs_message_is_its_words_without_the_box(text, message):
    assert colab_cli_errors.colab_message(text) == message


def test_a_usage_error_of_colab_is_relayed_as_its_message(exe, client_key):
    paths = Paths.from_env()
    argv = [str(exe), "ssh", "--proxy-mode", "-s", "x", "-i", str(paths.key), "--no-such-flag"]
    with pytest.raises(ColabsshError) as caught:
        colab_bridge.first_contact(argv, "x.colab-cli.invalid", paths.key, "x", lambda line: None)
    message = caught.value.message
    assert "(No such option: --no-such-flag)" in message
    assert not set("╭╮╰╯│─") & set(message + caught.value.hint)


@pytest.mark.parametrize("text, has", [
    (REAL_CRASH, "colab could not reach Colab"),
    ("[colab] Allocation refused (precondition failed). This can mean too many active sessions, or a temporary "
     "usage or capacity limit for the requested runtime. Run `colab stop` to free up a session, wait and retry, or "
     "try a different accelerator.", "Colab refused to create a runtime for colab session 'x'"),
    ("[colab] Backend rejected accelerator 'A100'. You may not have quota or entitlement for this accelerator on "
     "your account. Try a different one (e.g. --gpu T4) or omit --gpu/--tpu for a CPU runtime.",
     "Colab refused the accelerator A100"),
    (REAL_NO_SUCH_COMMAND.replace("'nosuch'", "'ssh'"), "google-colab-cli before 0.7"),
])
def test_colabs_failures_while_creating_a_runtime_are_explained(text, has):
    error = colab_cli_errors.explain_colab_stderr(text, "x")
    assert error is not None and has in error.message


# ---- doctor: the version comes from `colab version` --------------------------------------------------------


def test_doctor_shows_the_version_colab_version_prints(exe):
    check = proxy_check("colab", {"proxycommand": f'"{exe}" ssh --proxy-mode -s x -i "/k"'})
    assert check is not None and check.status == OK
    assert check.detail == f"{exe} (google-colab-cli 0.7.5)"


def test_doctor_fails_a_colab_without_ssh(exe, monkeypatch):
    monkeypatch.setenv("FAKE_COLAB_VERSION", "0.6.0")
    check = proxy_check("colab", {"proxycommand": f'"{exe}" ssh --proxy-mode -s x -i "/k"'})
    assert check is not None and check.status == FAIL
    assert "google-colab-cli 0.6.0, which has no `colab ssh --proxy-mode`" in check.detail
    assert "pip install -U google-colab-cli" in check.fix
