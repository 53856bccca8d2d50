"""The one description of a runtime, and the sessions colabssh knows (one per alias, in
``~/.ssh/colabssh/sessions.json``).

A ``Session`` is what `connect` learns from a connection code (``Session.from_code``), from the colab-ssh
options (connection/tunnel_input.py) or from `--via colab-cli` (connection/colab_cli.py); the same value is
written to sessions.json and read back by `list`, `status`, `sync`, `demo` and `forget`. Its transport and
login method are enums, checked once where a session enters: a decoded code, the options, sessions.json.
The ssh config's Host block (sshconfig/render.py ``HostEntry``) and the pre-flight login
(remote/preflight.py) are computed from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Optional

from . import DEFAULT_ALIAS
from .errors import BAD_INPUT, FAILURE, ColabsshError
from .paths import Paths

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")  # an alias, and a colab session name


def validate_alias(alias: str) -> str:
    """An alias is a plain ssh Host name: lower-case letters, digits, '.', '_', '-' (no patterns, no spaces;
    OpenSSH lower-cases the HostKeyAlias made from it), and not a name of this machine (localhost, an address),
    whose Host block at the top of ~/.ssh/config would catch every `ssh localhost`."""
    if not NAME_PATTERN.fullmatch(alias or ""):
        raise ColabsshError(f"the alias {alias!r} is not allowed",
                            "use letters, digits, '.', '_' and '-', starting with a letter or digit", BAD_INPUT)
    if alias != alias.lower():
        raise ColabsshError(f"the alias {alias!r} has capital letters (OpenSSH lower-cases the host key alias "
                            "made from it)", f"use {alias.lower()!r}", BAD_INPUT)
    if alias == "localhost" or alias.startswith("localhost.") or _is_address(alias):
        raise ColabsshError(f"the alias {alias!r} names this machine: its Host block would catch every ssh to it",
                            "pick a name of its own, e.g. colab", BAD_INPUT)
    return alias


def _is_address(name: str) -> bool:
    import ipaddress
    import socket

    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    try:
        socket.inet_aton(name)
        return True
    except OSError:
        return False


class Transport(str, Enum):
    """How the laptop reaches the runtime's sshd (the ``tunnel`` of a session; its value is what sessions.json
    and the connection code hold)."""

    NGROK = "ngrok"  # a TCP address of ngrok's
    CLOUDFLARED = "cloudflared"  # a trycloudflare.com name, through `cloudflared access ssh` (a ProxyCommand)
    LOCAL = "local"  # a plain host and port (tests, `colabssh try`)
    COLAB_CLI = "colab-cli"  # Google's `colab ssh --proxy-mode -s SESSION` (a ProxyCommand; no cell, no tunnel)

    def __str__(self) -> str:
        return self.value


class Login(str, Enum):
    """How ssh logs in (the ``auth`` of a session)."""

    KEY = "key"  # colabssh's own ed25519 key
    PASSWORD = "password"  # runtimes started by colab-ssh: ssh or VS Code asks; colabssh never stores it

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Session:
    alias: str
    host: str
    port: int
    user: str
    tunnel: Transport
    hostkey: str = ""  # "ssh-ed25519 BASE64" from a code; "" when not pinned (colab-ssh sessions, colab-cli)
    content: str = "/content"
    drive: str = ""
    python: str = "python3"
    gpu: str = ""
    code: str = ""
    auth: Login = Login.KEY
    connected_at: str = ""
    drive_folder: str = ""  # where this laptop sees the runtime's Drive (`connect --drive-folder`); "" = none
    extra: dict[str, Any] = field(default_factory=dict)  # colab-cli: {"session": NAME, "colab": PATH}

    def __post_init__(self) -> None:
        """Checked once, as a session enters: an unknown transport or login is a ValueError."""
        object.__setattr__(self, "tunnel", Transport(self.tunnel))
        object.__setattr__(self, "auth", Login(self.auth))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_code(cls, alias: str, text: str) -> Session:
        """The runtime a connection code describes (decoded strictly: a bad code is BAD_INPUT)."""
        from colab_bootstrap import conncode

        try:
            info = conncode.decode(text)
        except conncode.CodeError as exc:
            raise ColabsshError(f"bad connection code: {_without_subject(str(exc))}",
                                "copy the whole `colabssh connect ...` line that the cell printed last",
                                BAD_INPUT) from None
        return cls(alias=alias, host=info.host, port=info.port, user=info.user, tunnel=Transport(info.tunnel),
                   hostkey=info.hostkey, content=info.content, drive=info.drive, python=info.python, gpu=info.gpu,
                   code=text.strip(" \t\r\n"))

    @property
    def pinned(self) -> bool:
        """Whether the host key came with the code (else ssh asks, or pins it at first contact)."""
        return bool(self.hostkey)

    @property
    def fingerprint(self) -> str:
        from colab_bootstrap.conncode import fingerprint

        return fingerprint(self.hostkey) if self.hostkey else ""

    @property
    def colab_session(self) -> str:
        """The colab session name behind a colab-cli session ('' for other transports)."""
        return str(self.extra.get("session", self.alias)) if self.tunnel == Transport.COLAB_CLI else ""

    @property
    def address(self) -> str:
        """host:port, the bare host name for cloudflared sessions (reached through cloudflared), or
        colab-cli:SESSION for a runtime reached through Google's `colab ssh --proxy-mode -s SESSION`."""
        if self.tunnel == Transport.COLAB_CLI:
            return f"colab-cli:{self.colab_session}"
        return self.host if self.tunnel == Transport.CLOUDFLARED else f"{self.host}:{self.port}"

    def same_runtime(self, other: Session) -> bool:
        """Equal in everything but the time of connecting."""
        return replace(self, connected_at="") == replace(other, connected_at="")


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def load_sessions(paths: Paths) -> dict[str, Session]:
    return parse_sessions(paths, _read(paths))


def _read(paths: Paths) -> bytes | None:
    """The session file's bytes (None when missing), read as colabssh reads its ssh files: a FIFO, a device
    or a folder in its place is an error, never a hang or 'no sessions'."""
    from .sshconfig.files import read_bytes  # lazily: keeps `colabssh --help` light

    return read_bytes(paths.sessions)


def parse_sessions(paths: Paths, raw: bytes | None) -> dict[str, Session]:
    if raw is None:
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
        return {alias: Session.from_dict(value) for alias, value in data.get("sessions", {}).items()}
    except (ValueError, TypeError, AttributeError):
        raise ColabsshError(f"{paths.sessions} is damaged",
                            "run `colabssh forget ALIAS` for each session, or delete the file and connect again",
                            FAILURE) from None


def sessions_bytes(sessions: dict[str, Session]) -> bytes | None:
    """The session file's bytes for SESSIONS; None (no file) when there is none."""
    if not sessions:
        return None
    return (json.dumps({"version": 1, "sessions": {a: asdict(s) for a, s in sorted(sessions.items())}},
                       indent=2, sort_keys=True) + "\n").encode("utf-8")


def planned_sessions(paths: Paths, change: Callable[[dict[str, Session]], None]) -> tuple[bytes | None, bytes | None]:
    """(old, new) bytes of the session file when CHANGE is made to its sessions (equal when nothing changes)."""
    old = _read(paths)
    sessions = parse_sessions(paths, old)
    before = dict(sessions)
    change(sessions)
    return old, (old if sessions == before else sessions_bytes(sessions))


def with_session(session: Session) -> Callable[[dict[str, Session]], None]:
    """The change that records SESSION; an identical one (but for its time) is kept as it is."""

    def change(sessions: dict[str, Session]) -> None:
        old = sessions.get(session.alias)
        if old is None or not old.same_runtime(session):
            sessions[session.alias] = session

    return change


def without_session(alias: str) -> Callable[[dict[str, Session]], None]:
    def change(sessions: dict[str, Session]) -> None:
        sessions.pop(alias, None)

    return change


def save_sessions(paths: Paths, sessions: dict[str, Session]) -> None:
    """Atomic write (temp file in the same folder, fsync, rename), mode 0600; a failure is a ColabsshError."""
    from .sshconfig.files import atomic_write, make_private_dir  # lazily: keeps `colabssh --help` light

    body = sessions_bytes(sessions)
    make_private_dir(paths.root, parents=True)
    atomic_write(paths.sessions, body or b"", 0o600)


def update_sessions(paths: Paths, change: Callable[[dict[str, Session]], None]) -> bool:
    """Read, change and write the session list under colabssh's lock; False (nothing written) if unchanged."""
    from .sshconfig.apply import locked  # lazily: keeps `colabssh --help` light
    from .sshconfig.files import remove_file

    with locked(paths):
        sessions = load_sessions(paths)
        before = dict(sessions)
        change(sessions)
        if sessions == before:
            return False
        if sessions:
            save_sessions(paths, sessions)
        else:
            remove_file(paths.sessions)
        return True


def record_session(paths: Paths, session: Session) -> bool:
    """Remember a session; an identical one (but for its time) is kept as it is, so a re-run writes nothing."""
    return update_sessions(paths, with_session(session))


def drop_session(paths: Paths, alias: str) -> Optional[Session]:
    """Forget a session; return what was recorded (None if there was none). The file goes with the last one."""
    dropped: list[Session] = []

    def change(sessions: dict[str, Session]) -> None:
        if alias in sessions:
            dropped.append(sessions.pop(alias))

    update_sessions(paths, change)
    return dropped[0] if dropped else None


def resolve(alias: str | None, paths: Paths | None = None) -> Session:
    """The session for ALIAS; with no alias, 'colab' or else the only session there is."""
    paths = paths or Paths.from_env()
    sessions = load_sessions(paths)
    if alias is None:
        if DEFAULT_ALIAS in sessions:
            return sessions[DEFAULT_ALIAS]
        if len(sessions) == 1:
            return next(iter(sessions.values()))
        if not sessions:
            raise ColabsshError("no session yet", "run the cell in Colab, then `colabssh connect CODE`", BAD_INPUT)
        raise ColabsshError("several sessions and none is named 'colab'",
                            f"name one with --name ({', '.join(sorted(sessions))})", BAD_INPUT)
    validate_alias(alias)
    if alias not in sessions:
        raise ColabsshError(f"no session named {alias!r}{did_you_mean(alias, sessions)}",
                            "see `colabssh list`, or connect with `colabssh connect CODE --name "
                            f"{alias}`", BAD_INPUT)
    return sessions[alias]


def _without_subject(reason: str) -> str:
    """A CodeError's reason after "bad connection code: ", without naming the code again: "the connection code is
    malformed" -> "malformed", "the connection code's port ..." -> "its port ...", "the connection code names ..."
    -> "it names ..."."""
    for subject, replacement in (("the connection code is ", ""), ("the connection code's ", "its "),
                                 ("the connection code ", "it ")):
        if reason.startswith(subject):
            return replacement + reason[len(subject):]
    return reason


def did_you_mean(alias: str, known: Iterable[str]) -> str:
    """'; did you mean 'colab'?' when ALIAS is a near miss of a recorded session's alias (a typo), else ''."""
    import difflib

    close = difflib.get_close_matches(alias, sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
