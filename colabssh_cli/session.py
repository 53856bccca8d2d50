"""The sessions colabssh knows: one per alias, in ``~/.ssh/colabssh/sessions.json``.

A session is what `connect` learned from a connection code (or from the colab-ssh
options), kept so that `list`, `status`, `sync`, `demo` and `forget` know where
the content root, the Drive folder and the runtime's python are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Optional

from .errors import BAD_INPUT, FAILURE, ColabsshError
from .paths import Paths

DEFAULT_ALIAS = "colab"
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


@dataclass(frozen=True)
class Session:
    alias: str
    host: str
    port: int
    user: str
    tunnel: str  # ngrok | cloudflared | local | colab-cli
    hostkey: str = ""  # "" when not pinned from a code (colab-ssh sessions, colab-cli)
    content: str = "/content"
    drive: str = ""
    python: str = "python3"
    gpu: str = ""
    code: str = ""
    auth: str = "key"  # key | password
    connected_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def address(self) -> str:
        """host:port, the bare host name for cloudflared sessions (reached through cloudflared), or
        colab-cli:SESSION for a runtime reached through Google's `colab ssh --proxy-mode -s SESSION`."""
        if self.tunnel == "colab-cli":
            return f"colab-cli:{self.extra.get('session', self.alias)}"
        return self.host if self.tunnel == "cloudflared" else f"{self.host}:{self.port}"

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
        raise ColabsshError(f"no session named {alias!r}",
                            "see `colabssh list`, or connect with `colabssh connect CODE --name "
                            f"{alias}`", BAD_INPUT)
    return sessions[alias]
