"""The cloudflared quick tunnel, through the stand-in (tests/standins/cloudflared) at both ends."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

from tests.cellrunner import RunningCell
from tests.fakes import (
    FAKE_CLOUDFLARED,
    assert_clean_failure,
    client_key_path,
    path_with_standins,
    pids_with,
    ssh,
    sshd_listeners,
)

QUICK_HOST = re.compile(r"[a-z]+(?:-[a-z]+){3}\.trycloudflare\.com")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": path_with_standins(), "FAKE_CLOUDFLARED_DIR": str(tmp_path / "cloudflare-edge"),
            "COLABSSH_TUNNEL": "cloudflared", **extra}


def _proxy(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """The ProxyCommand the laptop uses, and the environment that lets the stand-in find the edge."""
    return (f"ProxyCommand={FAKE_CLOUDFLARED} access ssh --hostname %h",
            {**os.environ, "FAKE_CLOUDFLARED_DIR": str(tmp_path / "cloudflare-edge")})


def _finish(running: RunningCell, timeout: float = 60) -> tuple[int, str]:
    running.process.wait(timeout=timeout)
    running.wait_for(lambda line: False, timeout=timeout)
    return running.process.returncode, running.output


def test_quick_tunnel_hostname_reaches_the_code_and_ssh_goes_through_access_ssh(start_runtime, isolated_home,
                                                                                tmp_path):
    running = start_runtime("cloudflared", _env(tmp_path))
    info = running.info
    assert info.tunnel == "cloudflared" and QUICK_HOST.fullmatch(info.host), info.host
    assert info.port == 22
    log = (running.state / "cloudflared.log").read_text()
    assert f"https://{info.host}" in log and "Starting metrics server" in log
    proxy, env = _proxy(tmp_path)
    result = ssh(info, client_key_path(isolated_home), "echo via-cloudflare", "-o", proxy, pin=tmp_path / "pin",
                 env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "via-cloudflare"

    agent = int((running.state / "tunnel.pid").read_text().split()[0])
    assert running.stop() == 0
    assert not (tmp_path / "cloudflare-edge" / info.host).exists()  # the tunnel is gone with the cell
    assert agent not in pids_with("cloudflared")
    gone = ssh(info, client_key_path(isolated_home), "true", "-o", proxy, env=env)
    assert gone.returncode == 255


def test_hostname_is_read_from_the_log_when_quicktunnel_is_missing(start_runtime, isolated_home, tmp_path):
    running = start_runtime("cloudflared", _env(tmp_path, FAKE_CLOUDFLARED_NO_QUICKTUNNEL="1"))
    assert QUICK_HOST.fullmatch(running.info.host)
    assert f"https://{running.info.host}" in (running.state / "cloudflared.log").read_text()
    proxy, env = _proxy(tmp_path)
    result = ssh(running.info, client_key_path(isolated_home), "echo ok", "-o", proxy, env=env)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_a_failed_quick_tunnel_is_explained(start_runtime, tmp_path):
    running = start_runtime("cloudflared", _env(tmp_path, FAKE_CLOUDFLARED_FAIL="1"), expect_code=False)
    code, output = _finish(running)
    assert code == 1
    assert_clean_failure(output)
    assert "cloudflared stopped before the tunnel was up: failed to request quick Tunnel" in output
    assert "--tunnel ngrok" in output
    assert sshd_listeners(running.state) == []


def test_missing_cloudflared_that_cannot_be_downloaded_is_explained(start_runtime, tmp_path):
    system_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert shutil.which("cloudflared", path=system_path) is None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{sock.getsockname()[1]}"
        env = _env(tmp_path, PATH=system_path, https_proxy=dead_proxy, HTTPS_PROXY=dead_proxy, no_proxy="",
                   NO_PROXY="")
        running = start_runtime("cloudflared", env, expect_code=False)
        code, output = _finish(running)
    assert code == 1
    assert_clean_failure(output)
    assert "could not download cloudflared" in output and "put cloudflared on PATH" in output
    assert not (running.state / "cloudflared").exists() and not list(running.state.glob(".cloudflared*"))
    assert sshd_listeners(running.state) == []


def test_access_ssh_to_an_unknown_hostname_fails_like_cloudflared(tmp_path):
    env = {**os.environ, "FAKE_CLOUDFLARED_DIR": str(tmp_path / "cloudflare-edge")}
    result = subprocess.run([str(FAKE_CLOUDFLARED), "access", "ssh", "--hostname", "no-such-tunnel.trycloudflare.com"],
                            capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=30)
    assert result.returncode == 1
    assert "failed to connect to origin" in result.stderr and result.stdout == ""
