"""The ngrok tunnel: pyngrok's own code starts the stand-in agent (tests/standins/ngrok); the token stays secret."""

from __future__ import annotations

import os
import socket
import stat
import sys
import time
from pathlib import Path

import pytest

from colab_bootstrap.errors import BootstrapError
from colab_bootstrap.tunnels import ngrok
from colab_bootstrap.tunnels.ngrok import parse_public_url
from tests.cellrunner import RunningCell, start_cell
from tests.fakes import (
    FAKE_NGROK,
    TOKEN,
    assert_clean_failure,
    client_key_path,
    colab_env,
    ngrok_env,
    ngrok_records,
    pids_with,
    ssh,
    sshd_listeners,
)


@pytest.mark.parametrize(("url", "host", "port"), [
    ("tcp://0.tcp.ngrok.io:12345", "0.tcp.ngrok.io", 12345),
    ("tcp://4.tcp.eu.ngrok.io:18012", "4.tcp.eu.ngrok.io", 18012),
    ("tcp://2.tcp.us-cal-1.ngrok.io:12841", "2.tcp.us-cal-1.ngrok.io", 12841),
    ("tcp://1.tcp.jp.ngrok.io:1", "1.tcp.jp.ngrok.io", 1),
    ("tcp://3.134.73.173:65535", "3.134.73.173", 65535),
    ("tcp://[2600:1f16:d83:1201::6e:2]:10022", "2600:1f16:d83:1201::6e:2", 10022),
    ("tcp://localhost:2222", "localhost", 2222),
])
def test_public_urls_are_parsed(url, host, port):
    assert parse_public_url(url) == (host, port)


@pytest.mark.parametrize("url", [
    "tcp://0.tcp.ngrok.io", "tcp://host", "http://0.tcp.ngrok.io:12345", "https://abc.ngrok-free.app",
    "tcp://0.tcp.ngrok.io:0", "tcp://0.tcp.ngrok.io:70000", "tcp://a b:1", "tcp://-oProxyCommand=x:22",
    "tcp://0.tcp.ngrok.io:12345/path", "tcp://[1.2.3.4]:22", "tcp://[::1:22", "tcp://host:22\n", "",
    "tcp://bad_name.ngrok.io:22", "tcp://0.tcp.ngrok.io:１２", None,
])
def test_junk_urls_are_refused_with_a_clear_error(url):
    with pytest.raises(BootstrapError) as caught:
        parse_public_url(url)
    assert "ngrok gave an" in caught.value.message and caught.value.hint


def _finish(running: RunningCell, timeout: float = 60) -> tuple[int, str]:
    """Wait for a cell that fails to end; its exit status and all it printed."""
    running.process.wait(timeout=timeout)
    running.wait_for(lambda line: False, timeout=timeout)  # until its output is drained
    return running.process.returncode, running.output


def _state_texts(state: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in state.iterdir() if p.is_file() and p.name != "ngrok.yml")


def test_ngrok_tunnel_forwards_ssh_and_keeps_the_token_off_argv(start_runtime, isolated_home, tmp_path):
    running = start_runtime("ngrok", ngrok_env(tmp_path))
    info = running.info
    assert info.tunnel == "ngrok" and info.host == "localhost"
    sshd_port = int((running.state / "sshd_config").read_text().split("Port ")[1].split()[0])
    assert info.port != sshd_port  # the code names the tunnel's port, not sshd's
    result = ssh(info, client_key_path(isolated_home), "echo through-the-tunnel", pin=tmp_path / "pin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "through-the-tunnel"

    [record] = ngrok_records(tmp_path)
    config = running.state / "ngrok.yml"
    assert record["argv"][1:] == ["start", "--none", "--log", "stdout", "--config", str(config)]
    assert TOKEN not in " ".join(record["argv"])
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and TOKEN in config.read_text()
    assert TOKEN not in running.output
    assert TOKEN not in _state_texts(running.state)
    assert "starting web service" in (running.state / "ngrok.log").read_text()  # the agent's log, kept


def test_token_from_the_colab_secret_reaches_the_agent_only_through_its_config(start_runtime, isolated_home,
                                                                                 tmp_path):
    env = {**ngrok_env(tmp_path, token=None), **colab_env(tmp_path, {"NGROK_AUTHTOKEN": TOKEN})}
    running = start_runtime("ngrok", env)
    result = ssh(running.info, client_key_path(isolated_home), "echo ok")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    [record] = ngrok_records(tmp_path)
    assert "NGROK_AUTHTOKEN" not in record["env"]
    assert TOKEN not in " ".join(record["argv"])
    assert TOKEN not in running.output and TOKEN not in _state_texts(running.state)


def test_regional_host_names_reach_the_code(start_runtime, isolated_home, tmp_path):
    running = start_runtime("ngrok", ngrok_env(tmp_path, FAKE_NGROK_HOST="4.tcp.eu.ngrok.io"))
    assert running.info.host == "4.tcp.eu.ngrok.io"
    assert f"tunnel: ngrok 4.tcp.eu.ngrok.io:{running.info.port}" in running.output
    # that name does not resolve here: prove the port is the tunnel's by connecting to where it really is
    result = ssh(running.info, client_key_path(isolated_home), "echo ok", "-o", "HostName=127.0.0.1")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize(("fail", "source", "expected"), [
    ("", None, ["ERR_NGROK_4018", "NGROK_AUTHTOKEN", "dashboard.ngrok.com", "--tunnel cloudflared"]),
    ("8013", "env", ["ERR_NGROK_8013", "card", "--tunnel cloudflared"]),
    ("8013", "secret", ["ERR_NGROK_8013", "card", "--tunnel cloudflared"]),
    ("108", "env", ["ERR_NGROK_108", "one at a time", "dashboard.ngrok.com/agents", "--tunnel cloudflared"]),
    ("108", "secret", ["ERR_NGROK_108", "one at a time", "--tunnel cloudflared"]),
    ("107", "secret", ["ERR_NGROK_107", "invalid or was revoked", "--tunnel cloudflared"]),
])
def test_ngrok_errors_are_explained_without_traceback_or_token(start_runtime, tmp_path, fail, source, expected):
    env = ngrok_env(tmp_path, token=TOKEN if source == "env" else None,
                    **({"FAKE_NGROK_FAIL": fail} if fail else {}))
    if source == "secret":
        env.update(colab_env(tmp_path, {"NGROK_AUTHTOKEN": TOKEN}))
    running = start_runtime("ngrok", env, expect_code=False)
    code, output = _finish(running)
    assert code == 1
    assert_clean_failure(output, TOKEN)
    for text in expected:
        assert text in output, text
    assert "colabssh connect" not in output
    for record in ngrok_records(tmp_path):
        assert TOKEN not in " ".join(record["argv"])
    assert TOKEN not in (running.state / "ngrok.log").read_text()  # the 107 agent quotes the token: redacted
    if fail == "107":
        assert "Your authtoken: ***" in (running.state / "ngrok.log").read_text()
    assert sshd_listeners(running.state) == []  # what had started was stopped
    assert pids_with(str(running.state / "ngrok.yml")) == []


def test_a_failed_agent_download_is_explained_quickly(start_runtime, tmp_path):
    """PYNGROK_NGROK_PATH names a missing file, so pyngrok downloads the agent; a dead proxy makes that fail
    at once whether or not this machine has internet (urllib honours https_proxy)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: refused
        missing = tmp_path / "no-agent-here" / "ngrok"
        env = ngrok_env(tmp_path, PYNGROK_NGROK_PATH=str(missing), https_proxy=dead_proxy, HTTPS_PROXY=dead_proxy,
                        no_proxy="", NO_PROXY="")
        started = time.monotonic()
        running = start_runtime("ngrok", env, expect_code=False)
        code, output = _finish(running)
    assert code == 1
    assert time.monotonic() - started < 20
    assert_clean_failure(output, TOKEN)
    assert "could not download the ngrok agent" in output and "PYNGROK_NGROK_PATH" in output
    assert "--tunnel cloudflared" in output
    assert not missing.exists()
    assert sshd_listeners(running.state) == []


def test_a_token_with_odd_characters_is_refused_without_echoing_it(start_runtime, tmp_path):
    odd = "abc$(reboot)def"
    running = start_runtime("ngrok", ngrok_env(tmp_path, token=odd), expect_code=False)
    code, output = _finish(running)
    assert code == 1
    assert_clean_failure(output, odd)
    assert "authtoken has characters" in output
    assert ngrok_records(tmp_path) == []  # the agent never started
    assert not os.path.exists(running.state / "ngrok.yml")


def test_another_pyngrok_agent_in_the_same_kernel_is_left_alone(tmp_path, monkeypatch):
    """The notebook already runs the user's own pyngrok agent: the cell says so and does not kill it."""
    from pyngrok import conf, ngrok

    from colab_bootstrap.tunnels.ngrok import open_ngrok

    theirs = tmp_path / "theirs.yml"
    theirs.write_text(f'version: "3"\nagent:\n  authtoken: {TOKEN}\n')
    their_config = conf.PyngrokConfig(ngrok_path=str(FAKE_NGROK), config_path=str(theirs))
    ngrok.connect("8080", "tcp", pyngrok_config=their_config)
    try:
        agent = ngrok.get_ngrok_process(their_config).proc
        monkeypatch.setenv("PYNGROK_NGROK_PATH", str(FAKE_NGROK))
        monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
        state = tmp_path / "state"
        state.mkdir(mode=0o700)
        said: list[str] = []
        with pytest.raises(BootstrapError) as caught:
            open_ngrok(2222, state, said.append)
        assert "already runs an ngrok agent" in caught.value.message and "ngrok.kill()" in caught.value.hint
        assert agent.poll() is None
    finally:
        ngrok.kill(their_config)


# ------------------------------------------------------------------------ a python without pyngrok
def _without_pyngrok(monkeypatch) -> None:
    """Make ``import pyngrok.ngrok`` fail in this process, as in a python that lacks pyngrok."""
    monkeypatch.setitem(sys.modules, "pyngrok", None)
    monkeypatch.setitem(sys.modules, "pyngrok.ngrok", None)


def test_off_colab_a_missing_pyngrok_is_not_installed_and_the_command_is_named(monkeypatch, tmp_path):
    from colab_bootstrap import colab

    _without_pyngrok(monkeypatch)
    monkeypatch.setattr(colab, "COLAB_HOSTNAME_FILE", tmp_path / "no-colab-here")
    monkeypatch.setattr(sys, "executable", "/opt/my python/bin/python3")
    installs: list[list[str]] = []
    with pytest.raises(BootstrapError) as caught:
        ngrok._import_pyngrok(print, install=installs.append, environ={})
    assert installs == []
    error = caught.value
    assert error.message == "pyngrok is not installed for /opt/my python/bin/python3, and off Colab the cell " \
                            "installs nothing into a python"
    assert "install it yourself: '/opt/my python/bin/python3' -m pip install pyngrok;" in error.hint
    assert "--tunnel cloudflared" in error.hint and "--tunnel local" in error.hint
    assert "\n" not in error.message and "\n" not in error.hint


@pytest.mark.parametrize("how", ["COLAB_RELEASE_TAG", "the VM's hostname file"])
def test_on_colab_a_missing_pyngrok_is_installed_with_pip_as_before(monkeypatch, tmp_path, how):
    from colab_bootstrap import colab

    _without_pyngrok(monkeypatch)
    hostname = tmp_path / "hostname"
    if how != "COLAB_RELEASE_TAG":
        hostname.write_text("colab-vm\n")
    monkeypatch.setattr(colab, "COLAB_HOSTNAME_FILE", hostname)
    environ = {"COLAB_RELEASE_TAG": "release-colab_20250101"} if how == "COLAB_RELEASE_TAG" else {}
    installs: list[list[str]] = []
    said: list[str] = []

    def pip(argv: list[str]) -> None:  # what pip leaves behind: pyngrok importable
        installs.append(argv)
        monkeypatch.delitem(sys.modules, "pyngrok")
        monkeypatch.delitem(sys.modules, "pyngrok.ngrok")

    module = ngrok._import_pyngrok(said.append, install=pip, environ=environ)
    assert module.__name__ == "pyngrok.ngrok"
    assert installs == [[sys.executable, "-m", "pip", "install", "pyngrok"]]
    assert said == ["installing pyngrok with pip..."]


def test_on_colab_a_pip_that_fails_is_said(monkeypatch):
    _without_pyngrok(monkeypatch)
    with pytest.raises(BootstrapError) as caught:
        ngrok._import_pyngrok(lambda line: None, install=lambda argv: None, environ={"COLAB_RELEASE_TAG": "x"})
    assert caught.value.message == "pyngrok is not installed and pip could not install it"


@pytest.mark.slow
def test_the_cell_off_colab_in_a_python_without_pyngrok_installs_nothing(render, tmp_path):
    """The default (ngrok) cell run by a python without site-packages (``-S``: no pyngrok), off Colab. A ``pip``
    package first on PYTHONPATH records any ``python -m pip`` the cell would start."""
    pip_calls = tmp_path / "pip-calls"
    fake_pip = tmp_path / "fake-pip" / "pip"
    fake_pip.mkdir(parents=True)
    (fake_pip / "__init__.py").write_text("")
    (fake_pip / "__main__.py").write_text(
        f"import sys\nwith open({str(pip_calls)!r}, 'a') as f:\n    f.write(' '.join(sys.argv[1:]) + '\\n')\n")
    env = {**ngrok_env(tmp_path), "PYTHONPATH": str(fake_pip.parent)}
    running = start_cell(render("ngrok"), tmp_path / "runtime", env, expect_code=False, python_flags=("-S",))
    try:
        code, output = _finish(running)
    finally:
        running.stop()
    assert code == 1 and not pip_calls.exists(), output
    assert_clean_failure(output, TOKEN)
    assert f"install it yourself: {sys.executable} -m pip install pyngrok;" in output
    assert ngrok_records(tmp_path) == [] and sshd_listeners(running.state) == []
    assert "sshd:" not in output and "host key:" not in output  # it stopped before anything started
