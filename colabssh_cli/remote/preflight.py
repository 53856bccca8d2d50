"""The pre-flight login check, in-process with paramiko, before any file is written: the one module of
`connect` that speaks SSH itself.

It logs in the way the written config will: the host key from the connection code
as the only key paramiko accepts (RejectPolicy), colabssh's own client key and no
other (no agent, no ~/.ssh keys), and for cloudflared sessions the same
``cloudflared access ssh`` ProxyCommand. Each way it can fail (dead tunnel, refused
key, another host key) becomes a ColabsshError that says what it means and what to do.
For `--via colab-cli`, ``login_over`` logs in over the stream colab bridges (connection/colab_bridge.py)
and returns the host key the runtime showed.

paramiko is imported inside the functions so that `colabssh --help` stays fast. A code's connect logs in with
OpenSSH alone (connection/tunnel.py); paramiko is asked only when that login fails, to tell why
(``why_login_failed``), and for a runtime without a pinned key (``presented_host_key``).
"""

from __future__ import annotations

import base64
import logging
import shlex
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from colab_bootstrap.conncode import fingerprint

from ..errors import FAILURE, UNREACHABLE, ColabsshError
from ..session import Session

if TYPE_CHECKING:
    import paramiko

TIMEOUT = 20.0
RERUN = "run the cell in Colab again and `colabssh connect` the code it prints"


def _known_hosts_name(session: Session) -> str:
    """The name paramiko looks the host key up under (it has no HostKeyAlias)."""
    return session.host if session.port == 22 else f"[{session.host}]:{session.port}"


def _quiet_paramiko() -> None:
    # paramiko logs failed handshakes with tracebacks; without a handler Python would print them.
    logger = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _proxy(proxy_argv: Optional[Sequence[str]]) -> Any:
    import paramiko

    if not proxy_argv:
        return None
    try:
        return paramiko.ProxyCommand(shlex.join(list(proxy_argv)))
    except (OSError, paramiko.SSHException) as exc:
        raise ColabsshError(f"cannot start the tunnel client {proxy_argv[0]}: {exc}",
                            "check that cloudflared runs on this machine", UNREACHABLE) from None


def _load_client_key(key_path: Path) -> paramiko.PKey:
    import paramiko

    try:
        return paramiko.Ed25519Key.from_private_key_file(str(key_path))
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise ColabsshError(f"cannot read colabssh's client key {key_path}: {exc}",
                            "delete it (and its .pub) and run `colabssh bootstrap` to make a new one, "
                            "then re-run the cell with the new key", FAILURE) from None


def _unreachable(session: Session, detail: str) -> ColabsshError:
    return ColabsshError(f"the runtime did not answer at {session.address} ({detail}): the tunnel is down or "
                         "the cell stopped", RERUN, UNREACHABLE)


def _explain(session: Session, exc: BaseException, expected_key: str = "") -> ColabsshError:
    import paramiko

    if isinstance(exc, ColabsshError):
        return exc
    if isinstance(exc, paramiko.BadHostKeyException):
        got = fingerprint(f"{exc.key.get_name()} {exc.key.get_base64()}")
        want = fingerprint(expected_key) if expected_key else "?"
        return ColabsshError(
            f"the runtime at {session.address} presented host key {got}, not the code's {want}: this code is "
            "from another runtime, or something in the middle answered",
            "copy the code the cell printed most recently; if it is the latest, do not connect", UNREACHABLE)
    if isinstance(exc, paramiko.AuthenticationException):
        return ColabsshError(f"the runtime at {session.address} refused colabssh's key",
                             "the cell was made for another key: run `colabssh bootstrap` on this machine and "
                             "run the cell it prints", UNREACHABLE)
    if isinstance(exc, paramiko.ProxyCommandFailure):
        return _unreachable(session, f"cloudflared failed: {exc.error}".strip())
    if isinstance(exc, socket.gaierror):
        return _unreachable(session, "the host name does not resolve")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return _unreachable(session, f"no answer within {TIMEOUT:.0f} s")
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return _unreachable(session, "connection refused")
    if isinstance(exc, ConnectionRefusedError):
        return _unreachable(session, "connection refused")
    if isinstance(exc, (EOFError, ConnectionError)):
        return _unreachable(session, "the connection was closed")
    if isinstance(exc, paramiko.SSHException):
        return _unreachable(session, str(exc).rstrip(".") or "the SSH handshake failed")
    if isinstance(exc, OSError):
        return _unreachable(session, exc.strerror or str(exc))
    return _unreachable(session, type(exc).__name__)


def check_login(session: Session, key_path: Path, proxy_argv: Optional[Sequence[str]] = None,
                timeout: float = TIMEOUT) -> None:
    """Log in as the written config will, with the session's pinned host key as the only one accepted; raise
    ColabsshError when that would not work. PROXY_ARGV: the ProxyCommand (cloudflared) as an argv."""
    import paramiko

    _quiet_paramiko()
    kind, blob = session.hostkey.split()[:2]
    pinned = paramiko.Ed25519Key(data=base64.b64decode(blob))
    client = paramiko.SSHClient()
    client.get_host_keys().add(_known_hosts_name(session), kind, pinned)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    pkey = _load_client_key(key_path)
    try:
        client.connect(session.host, session.port, username=session.user, pkey=pkey, allow_agent=False,
                       look_for_keys=False, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                       sock=_proxy(proxy_argv))
    except Exception as exc:  # noqa: BLE001 - every failure becomes one explained error
        raise _explain(session, exc, session.hostkey) from None
    finally:
        client.close()


def presented_host_key(session: Session, proxy_argv: Optional[Sequence[str]] = None,
                       timeout: float = TIMEOUT) -> str:
    """The host key the runtime presents ("TYPE BASE64"), without logging in (unpinned sessions)."""
    import paramiko

    _quiet_paramiko()
    sock: Any = None
    transport: Optional[paramiko.Transport] = None
    try:
        sock = _proxy(proxy_argv) or socket.create_connection((session.host, session.port), timeout=timeout)
        transport = paramiko.Transport(sock)
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return f"{key.get_name()} {key.get_base64()}"
    except Exception as exc:  # noqa: BLE001
        raise _explain(session, exc) from None
    finally:
        if transport is not None:
            transport.close()
        elif sock is not None:
            sock.close()


def no_answer(session: Session) -> ColabsshError:
    """The runtime did not answer in time: what ``check_login`` says when its connection times out."""
    return _unreachable(session, f"no answer within {TIMEOUT:.0f} s")


def why_login_failed(session: Session, key_path: Path, proxy_argv: Optional[Sequence[str]], openssh_stderr: str,
                     timeout: float = TIMEOUT) -> Optional[ColabsshError]:
    """After OpenSSH's login to a pinned SESSION failed: the pre-flight's own explanation (paramiko, imported only
    now), or None when paramiko logs in (then something in the user's ssh config breaks OpenSSH's login).
    A time-out is not tried a second time."""
    if "timed out" in openssh_stderr.lower():
        if "banner exchange" in openssh_stderr:
            return _unreachable(session, "Error reading SSH protocol banner")
        return no_answer(session)
    try:
        check_login(session, key_path, proxy_argv, timeout)
    except ColabsshError as exc:
        return exc
    return None


# ---- over a stream that colab bridges (`--via colab-cli`) ----------------------------------------------------


class Replayed:
    """The socket paramiko talks through, whose first bytes (the SSH banner on) colabssh has already read."""

    def __init__(self, sock: socket.socket, pending: bytes) -> None:
        self._sock = sock
        self._pending = pending

    def recv(self, size: int) -> bytes:
        if self._pending:
            chunk, self._pending = self._pending[:size], self._pending[size:]
            return chunk
        return self._sock.recv(size)

    def send(self, data: bytes) -> int:
        return self._sock.send(data)

    def settimeout(self, timeout: Optional[float]) -> None:
        self._sock.settimeout(timeout)

    def close(self) -> None:
        self._sock.close()

    @property
    def _closed(self) -> bool:  # paramiko's Transport.join looks at it
        return self._sock.fileno() < 0


def client_key(key_path: Path) -> Any:
    """colabssh's client key, loaded (a ColabsshError when it cannot be read): for ``login_over``."""
    _quiet_paramiko()
    return _load_client_key(key_path)


def login_over(sock: Replayed, hostname: str, user: str, pkey: Any, timeout: float = 60.0) -> str:
    """Log in over SOCK with PKEY (``client_key``) and return the host key the runtime presented ("TYPE BASE64"),
    taken as presented (trust on first use: the caller says why that is safe). Failures are raised as they
    are (``is_refused_key`` tells a refused key); the client is closed either way."""
    import paramiko

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # kept in memory only; colabssh pins it
    try:
        client.connect(hostname, 22, username=user, pkey=pkey, allow_agent=False, look_for_keys=False,
                       sock=sock,  # type: ignore[arg-type]
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout)
        transport = client.get_transport()
        assert transport is not None
        key = transport.get_remote_server_key()
        return f"{key.get_name()} {key.get_base64()}"
    finally:
        client.close()


def is_refused_key(exc: BaseException) -> bool:
    """Whether EXC (from ``login_over``) is the runtime refusing colabssh's key."""
    import paramiko

    return isinstance(exc, paramiko.AuthenticationException)
