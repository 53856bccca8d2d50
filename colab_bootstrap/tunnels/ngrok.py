"""An ngrok TCP tunnel through pyngrok, with the token kept off every command line.

pyngrok turns its ``auth_token`` setting (which it also fills from the
``NGROK_AUTHTOKEN`` variable) into ``--authtoken TOKEN`` on the agent's argv,
where ``ps`` shows it. So the token goes into the agent's own config file (mode
0600, in the state folder) and ``auth_token`` is cleared.
"""

from __future__ import annotations

import getpass
import importlib
import ipaddress
import logging
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..colab import get_secret, on_colab
from ..conncode import CodeError, validate_host, validate_port
from ..errors import BootstrapError
from ..files import write_private
from ..processes import stop_child
from . import Tunnel, forget_tunnel_pid, record_tunnel_pid

CONFIG_NAME = "ngrok.yml"
# The tunnel's metadata (the ngrok API lists it): the laptop's relay finds a recycled runtime by its host key
# without Drive for desktop (colabssh_cli/comeback/ngrok_api.py reads the same prefix).
METADATA_PREFIX = "colabssh hostkey="
LOG_NAME = "ngrok.log"
_URL = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[^:/\s\[\]]+):([0-9]{1,5})")
_CLOUDFLARED = "or use cloudflared, which needs no account: colabssh bootstrap --tunnel cloudflared"

EXPLANATIONS = {
    "ERR_NGROK_4018": ("ngrok refused to start: it needs a verified account and its authtoken (ERR_NGROK_4018).",
                       "copy your token from https://dashboard.ngrok.com/get-started/your-authtoken into the "
                       "Colab Secret NGROK_AUTHTOKEN (key icon, left bar; or the environment variable of that "
                       "name) and run the cell again, " + _CLOUDFLARED),
    "ERR_NGROK_105": ("ngrok refused the authtoken: it does not look like an ngrok token (ERR_NGROK_105).",
                      "copy the token again from https://dashboard.ngrok.com/get-started/your-authtoken, "
                      + _CLOUDFLARED),
    "ERR_NGROK_107": ("ngrok refused the authtoken: it is invalid or was revoked (ERR_NGROK_107).",
                      "make a new token at https://dashboard.ngrok.com/get-started/your-authtoken, " + _CLOUDFLARED),
    "ERR_NGROK_8013": ("ngrok TCP tunnels need a card on file, even on the free plan (ERR_NGROK_8013); "
                       "the card is not charged.",
                       "add one at https://dashboard.ngrok.com/settings#id-verification, " + _CLOUDFLARED),
    "ERR_NGROK_108": ("your ngrok account already has an agent running elsewhere, and the free plan allows "
                      "one at a time (ERR_NGROK_108).",
                      "stop the other agent (another notebook or machine; see "
                      "https://dashboard.ngrok.com/agents), " + _CLOUDFLARED),
}


def parse_public_url(url: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` -> (HOST, PORT), strictly; HOST a DNS name, an IPv4 or a bracketed IPv6 address."""
    match = _URL.fullmatch(url) if isinstance(url, str) else None
    if not match:
        raise BootstrapError(f"ngrok gave an unexpected address {url!r} (expected tcp://HOST:PORT)",
                             "upgrade pyngrok and the ngrok agent, " + _CLOUDFLARED)
    host = match.group(1)
    try:
        if host.startswith("["):
            host = host[1:-1]
            if ipaddress.ip_address(host).version != 6:
                raise CodeError(f"{host} in brackets is not an IPv6 address")
        return validate_host(host), validate_port(match.group(2))
    except (CodeError, ValueError) as exc:
        raise BootstrapError(f"ngrok gave an unusable address {url!r}: {exc}",
                             "upgrade pyngrok and the ngrok agent, " + _CLOUDFLARED) from None


def find_token(say: Callable[[str], None] | None = None) -> str:
    """NGROK_AUTHTOKEN from Colab Secrets, the environment, or a hidden prompt."""
    token = get_secret("NGROK_AUTHTOKEN", say) or os.environ.get("NGROK_AUTHTOKEN")
    if not token and sys.stdin is not None and sys.stdin.isatty():
        token = getpass.getpass("ngrok authtoken (input hidden): ")
    if not token and _in_notebook():
        token = getpass.getpass("ngrok authtoken (input hidden): ")
    return (token or "").strip()


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


def write_agent_config(state: Path, token: str) -> Path:
    """The agent's own config file (mode 0600) holding the token: the one place the agent reads it from."""
    if token and not re.fullmatch(r"[A-Za-z0-9_\-]+", token):
        raise BootstrapError("the ngrok authtoken has characters an ngrok token never has",
                             "copy it again from https://dashboard.ngrok.com/get-started/your-authtoken")
    path = state / CONFIG_NAME
    write_private(path, 'version: "3"\n' + (f"agent:\n  authtoken: {token}\n" if token else ""))
    return path


def pip_install_command() -> list[str]:
    """How pyngrok is installed into the python that runs the cell."""
    return [sys.executable, "-m", "pip", "install", "pyngrok"]


def _pip_install(argv: list[str]) -> None:
    subprocess.run([*argv, "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def not_on_colab_error() -> BootstrapError:
    """Off Colab the cell installs nothing into a python it does not own: it says what to run instead."""
    return BootstrapError(
        f"pyngrok is not installed for {sys.executable}, and off Colab the cell installs nothing into a python",
        f"install it yourself: {shlex.join(pip_install_command())}; or use a tunnel that needs no pyngrok: "
        "colabssh bootstrap --tunnel cloudflared (no account), or --tunnel local (no tunnel: sshd on 127.0.0.1)")


def _import_pyngrok(say: Callable[[str], None], install: Callable[[list[str]], None] = _pip_install,
                    environ: Mapping[str, str] | None = None) -> Any:
    """pyngrok's ``ngrok`` module; on Colab (``colab.on_colab``), pip installs pyngrok first when it is missing,
    as Colab's own notebooks do; anywhere else a missing pyngrok is an error that names the command to run."""
    try:
        return importlib.import_module("pyngrok.ngrok")
    except ImportError:
        if not on_colab(environ):
            raise not_on_colab_error() from None
    say("installing pyngrok with pip...")
    install(pip_install_command())
    try:
        importlib.invalidate_caches()
        return importlib.import_module("pyngrok.ngrok")
    except ImportError:
        raise BootstrapError("pyngrok is not installed and pip could not install it",
                             f"{shlex.join(pip_install_command())}, " + _CLOUDFLARED) from None


def explain(exc: BaseException, token: str) -> BootstrapError:
    """Turn a pyngrok exception into one paragraph with the fix; the token never appears."""
    text = " ".join(str(part) for part in (exc, getattr(exc, "ngrok_error", None) or "",
                                           getattr(exc, "body", None) or ""))
    if type(exc).__name__ == "PyngrokNgrokInstallError":
        return BootstrapError("could not download the ngrok agent (no internet, or the download was blocked).",
                              "set PYNGROK_NGROK_PATH to an ngrok binary you have, " + _CLOUDFLARED)
    code = re.search(r"ERR_NGROK_\d+", text)
    if code and code.group(0) in EXPLANATIONS:
        return BootstrapError(*EXPLANATIONS[code.group(0)])
    first = (text.strip().splitlines() or ["no detail"])[0]
    if token:
        first = first.replace(token, "***")
    return BootstrapError(f"ngrok failed: {first[:300]}", _CLOUDFLARED)


class _Redact(logging.Filter):
    """Keeps the token out of ngrok.log, whatever the agent or pyngrok write."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if self.token:
            text = record.getMessage()
            if self.token in text:
                record.msg, record.args = text.replace(self.token, "***"), None
        return True


def _log_to_file(state: Path, token: str) -> None:
    """pyngrok's log (and the agent's, which it relays) goes to ngrok.log, not to the notebook.

    Without a handler, Python's last-resort handler would print the agent's error lines on stderr.
    """
    logger = logging.getLogger("pyngrok")
    for handler in [h for h in logger.handlers if getattr(h, "colabssh", False)]:
        logger.removeHandler(handler)
        handler.close()
    handler = logging.FileHandler(state / LOG_NAME)
    handler.colabssh = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.addFilter(_Redact(token))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def metadata_for(host_key: str) -> str:
    """The tag of a tunnel to an sshd with HOST_KEY ("ssh-ed25519 BASE64"): its fingerprint, nothing secret."""
    from ..conncode import fingerprint

    return METADATA_PREFIX + fingerprint(host_key) if host_key else ""


def require_pyngrok(say: Callable[[str], None]) -> None:
    """pyngrok is there (on Colab: installed when missing), checked before the cell starts anything: off Colab a
    missing one stops the cell before sshd runs and before a host key is kept on Drive."""
    _import_pyngrok(say)


def open_ngrok(port: int, state: Path, say: Callable[[str], None], host_key: str = "") -> Tunnel:
    token = find_token(say)
    config_path = write_agent_config(state, token)
    ngrok = _import_pyngrok(say)
    conf = importlib.import_module("pyngrok.conf")
    installer = importlib.import_module("pyngrok.installer")
    setattr(installer, "_print_progress_enabled", False)  # noqa: B010  (pyngrok's download progress)
    _log_to_file(state, token)
    # monitor_thread: pyngrok keeps reading the agent's log, so a full pipe never blocks the agent
    cfg = conf.PyngrokConfig(config_path=str(config_path), startup_timeout=30, monitor_thread=True)
    cfg.auth_token = None  # pyngrok would put it on the agent's argv
    if importlib.import_module("pyngrok.process").is_process_running(cfg.ngrok_path):
        # not ours: an earlier run's agent was stopped above by its pid file
        raise BootstrapError("this notebook already runs an ngrok agent through pyngrok (another tunnel of yours); "
                             "pyngrok keeps one agent per binary and ngrok's free plan one per account",
                             "stop it with pyngrok's ngrok.kill(), then run this cell again, " + _CLOUDFLARED)
    try:
        if not os.path.exists(cfg.ngrok_path):
            say(f"tunnel: downloading the ngrok agent to {cfg.ngrok_path}...")
            installer.install_ngrok(cfg.ngrok_path, ngrok_version=cfg.ngrok_version)
        say("tunnel: starting ngrok...")
        # pyngrok passes extra options into the agent's tunnel definition (POST /api/tunnels)
        tagged = {"metadata": metadata_for(host_key)} if host_key else {}
        tunnel = ngrok.connect(str(port), "tcp", pyngrok_config=cfg, **tagged)
        process = ngrok.get_ngrok_process(cfg)
    except Exception as exc:  # every pyngrok failure becomes one explained paragraph
        try:
            ngrok.kill(cfg)
        except Exception:
            pass
        raise explain(exc, token) from None
    except BaseException:
        ngrok.kill(cfg)
        raise
    try:
        host, public_port = parse_public_url(tunnel.public_url)
    except BootstrapError:
        ngrok.kill(cfg)
        raise
    record_tunnel_pid(state, process.proc.pid, str(config_path))
    say(f"tunnel: ngrok {host}:{public_port} -> 127.0.0.1:{port}")

    agent = process.proc

    def close() -> None:
        """Stop this run's agent only (pyngrok's own kill() would stop whatever agent it knows for the binary)."""
        stop_child(agent)
        forget_tunnel_pid(state, agent.pid)

    return Tunnel(kind="ngrok", host=host, port=public_port, close=close, process=agent)
