"""The pre-flight login check, in-process with paramiko, before any file is written.

It logs in the way the written config will: the host key from the connection code
as the only key paramiko accepts (RejectPolicy), colabssh's own client key and no
other (no agent, no ~/.ssh keys), and for cloudflared sessions the same
``cloudflared access ssh`` ProxyCommand. Each way it can fail (dead tunnel, refused
key, another host key) becomes a ColabsshError that says what it means and what to do.

paramiko is imported inside the functions so that `colabssh --help` stays fast.
"""

from __future__ import annotations

import base64
import logging
import shlex
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from colab_bootstrap.conncode import fingerprint

from ..errors import FAILURE, UNREACHABLE, ColabsshError

if TYPE_CHECKING:
    import paramiko

TIMEOUT = 20.0
RERUN = "run the cell in Colab again and `colabssh connect` the code it prints"


@dataclass(frozen=True)
class Endpoint:
    """Where the runtime answers, and how (a ProxyCommand argv for cloudflared sessions)."""

    host: str
    port: int
    user: str
    proxy_argv: Optional[Sequence[str]] = None

    @property
    def where(self) -> str:
        return self.host if self.proxy_argv else f"{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The name paramiko looks the host key up under (it has no HostKeyAlias)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def _quiet_paramiko() -> None:
    # paramiko logs failed handshakes with tracebacks; without a handler Python would print them.
    logger = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _proxy(endpoint: Endpoint) -> Any:
    import paramiko

    if not endpoint.proxy_argv:
        return None
    try:
        return paramiko.ProxyCommand(shlex.join(list(endpoint.proxy_argv)))
    except (OSError, paramiko.SSHException) as exc:
        raise ColabsshError(f"cannot start the tunnel client {endpoint.proxy_argv[0]}: {exc}",
                            "check that cloudflared runs on this machine", UNREACHABLE) from None


def _load_client_key(key_path: Path) -> paramiko.PKey:
    import paramiko

    try:
        return paramiko.Ed25519Key.from_private_key_file(str(key_path))
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise ColabsshError(f"cannot read colabssh's client key {key_path}: {exc}",
                            "delete it (and its .pub) and run `colabssh bootstrap` to make a new one, "
                            "then re-run the cell with the new key", FAILURE) from None


def _unreachable(endpoint: Endpoint, detail: str) -> ColabsshError:
    return ColabsshError(f"the runtime did not answer at {endpoint.where} ({detail}): the tunnel is down or "
                         "the cell stopped", RERUN, UNREACHABLE)


def _explain(endpoint: Endpoint, exc: BaseException, expected_key: str = "") -> ColabsshError:
    import paramiko

    if isinstance(exc, ColabsshError):
        return exc
    if isinstance(exc, paramiko.BadHostKeyException):
        got = fingerprint(f"{exc.key.get_name()} {exc.key.get_base64()}")
        want = fingerprint(expected_key) if expected_key else "?"
        return ColabsshError(
            f"the runtime at {endpoint.where} presented host key {got}, not the code's {want}: this code is "
            "from another runtime, or something in the middle answered",
            "copy the code the cell printed most recently; if it is the latest, do not connect", UNREACHABLE)
    if isinstance(exc, paramiko.AuthenticationException):
        return ColabsshError(f"the runtime at {endpoint.where} refused colabssh's key",
                             "the cell was made for another key: run `colabssh bootstrap` on this machine and "
                             "run the cell it prints", UNREACHABLE)
    if isinstance(exc, paramiko.ProxyCommandFailure):
        return _unreachable(endpoint, f"cloudflared failed: {exc.error}".strip())
    if isinstance(exc, socket.gaierror):
        return _unreachable(endpoint, "the host name does not resolve")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return _unreachable(endpoint, f"no answer within {TIMEOUT:.0f} s")
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return _unreachable(endpoint, "connection refused")
    if isinstance(exc, ConnectionRefusedError):
        return _unreachable(endpoint, "connection refused")
    if isinstance(exc, (EOFError, ConnectionError)):
        return _unreachable(endpoint, "the connection was closed")
    if isinstance(exc, paramiko.SSHException):
        return _unreachable(endpoint, str(exc).rstrip(".") or "the SSH handshake failed")
    if isinstance(exc, OSError):
        return _unreachable(endpoint, exc.strerror or str(exc))
    return _unreachable(endpoint, type(exc).__name__)


def check_login(endpoint: Endpoint, host_key: str, key_path: Path, timeout: float = TIMEOUT) -> None:
    """Log in as the written config will; raise ColabsshError when that would not work."""
    import paramiko

    _quiet_paramiko()
    kind, blob = host_key.split()[:2]
    pinned = paramiko.Ed25519Key(data=base64.b64decode(blob))
    client = paramiko.SSHClient()
    client.get_host_keys().add(endpoint.known_hosts_name, kind, pinned)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    pkey = _load_client_key(key_path)
    try:
        client.connect(endpoint.host, endpoint.port, username=endpoint.user, pkey=pkey, allow_agent=False,
                       look_for_keys=False, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                       sock=_proxy(endpoint))
    except Exception as exc:  # noqa: BLE001 - every failure becomes one explained error
        raise _explain(endpoint, exc, host_key) from None
    finally:
        client.close()


def presented_host_key(endpoint: Endpoint, timeout: float = TIMEOUT) -> str:
    """The host key the runtime presents ("TYPE BASE64"), without logging in (unpinned sessions)."""
    import paramiko

    _quiet_paramiko()
    sock: Any = None
    transport: Optional[paramiko.Transport] = None
    try:
        sock = _proxy(endpoint) or socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
        transport = paramiko.Transport(sock)
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return f"{key.get_name()} {key.get_base64()}"
    except Exception as exc:  # noqa: BLE001
        raise _explain(endpoint, exc) from None
    finally:
        if transport is not None:
            transport.close()
        elif sock is not None:
            sock.close()
