"""A Cloudflare quick tunnel (trycloudflare.com) to sshd: no account needed.

The laptop reaches it with ``cloudflared access ssh --hostname HOST`` as the
ssh ProxyCommand. The hostname comes from the metrics server's ``/quicktunnel``
endpoint, with the log text as a fallback for older cloudflared builds.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from pathlib import Path

from ..conncode import CodeError, validate_host
from ..errors import BootstrapError
from ..files import copy_atomically
from ..processes import stop_child
from . import Tunnel, forget_tunnel_pid, record_tunnel_pid

START_TIMEOUT = 60.0
LOG_NAME = "cloudflared.log"
# The box line "|  https://some-random-words.trycloudflare.com  |"; not an error's "https://api.trycloudflare.com/tunnel".
_HOSTNAME_IN_LOG = re.compile(r"https://((?!api\.)[A-Za-z0-9-]+\.trycloudflare\.com)(?=[\s|]|$)")
_RELEASES = "https://github.com/cloudflare/cloudflared/releases/latest/download/"
_ALTERNATIVE = "or use ngrok: colabssh bootstrap --tunnel ngrok"


def find_cloudflared(state: Path, say: Callable[[str], None]) -> str:
    found = shutil.which("cloudflared")
    if found:
        return found
    target = state / "cloudflared"
    if os.access(target, os.X_OK):
        return str(target)
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower())
    if arch is None:
        raise BootstrapError(f"no cloudflared build is known for this machine ({platform.machine()})",
                             _ALTERNATIVE)
    url = f"{_RELEASES}cloudflared-linux-{arch}"
    say("downloading cloudflared...")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            copy_atomically(target, response, 0o700)
    except (OSError, urllib.error.URLError) as exc:
        raise BootstrapError(f"could not download cloudflared: {exc}",
                             "put cloudflared on PATH, " + _ALTERNATIVE) from None
    return str(target)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quicktunnel_hostname(metrics: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{metrics}/quicktunnel", timeout=2) as response:
            data = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError):
        return None
    hostname = data.get("hostname") if isinstance(data, dict) else None
    return hostname if isinstance(hostname, str) and hostname else None


def open_cloudflared(port: int, state: Path, say: Callable[[str], None]) -> Tunnel:
    exe = find_cloudflared(state, say)
    metrics = f"127.0.0.1:{_free_port()}"
    argv = [exe, "tunnel", "--no-autoupdate", "--metrics", metrics, "--url", f"ssh://localhost:{port}"]
    say("tunnel: starting a cloudflared quick tunnel...")
    log_path = state / LOG_NAME
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, errors="replace")
    record_tunnel_pid(state, process.pid, f"--url ssh://localhost:{port}")

    def close() -> None:
        stop_child(process)
        forget_tunnel_pid(state, process.pid)

    lines: deque[str] = deque(maxlen=200)
    threading.Thread(target=_copy_log, args=(process, log_path, lines), daemon=True).start()
    try:
        hostname = _wait_hostname(process, metrics, lines)
        try:
            validate_host(hostname)
        except CodeError as exc:
            raise BootstrapError(f"cloudflared gave an unusable hostname: {exc}", _ALTERNATIVE) from None
    except BaseException:
        close()
        raise
    say(f"tunnel: cloudflared {hostname} -> 127.0.0.1:{port}")
    return Tunnel(kind="cloudflared", host=hostname, port=22, close=close, process=process)


def _copy_log(process: subprocess.Popen[str], log_path: Path, lines: deque[str]) -> None:
    assert process.stderr is not None
    with open(log_path, "a") as log:
        for line in process.stderr:
            lines.append(line)
            log.write(line)
            log.flush()


def _wait_hostname(process: subprocess.Popen[str], metrics: str, lines: deque[str]) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        hostname = _quicktunnel_hostname(metrics)
        if hostname:
            return hostname
        for line in list(lines):
            match = _HOSTNAME_IN_LOG.search(line)
            if match:
                return match.group(1)
        if process.poll() is not None:
            time.sleep(0.1)  # let the log thread read the agent's last words
            tail = next((_strip_log_prefix(line) for line in reversed(list(lines)) if line.strip()), "no output")
            raise BootstrapError(f"cloudflared stopped before the tunnel was up: {tail[:300]}", _ALTERNATIVE)
        time.sleep(0.1)
    raise BootstrapError(f"cloudflared gave no tunnel address within {START_TIMEOUT:.0f} s",
                         "Cloudflare's quick tunnels have no uptime guarantee; run the cell again, " + _ALTERNATIVE)


def _strip_log_prefix(line: str) -> str:
    """'2026-01-01T00:00:00Z ERR text' -> 'text'."""
    return re.sub(r"^\S+ (?:DBG|INF|WRN|ERR|FTL) ", "", line.strip())
