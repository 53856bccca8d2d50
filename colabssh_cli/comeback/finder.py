"""Where an alias's runtime may be now, newest first: the connection codes the cell left on Drive (only those
showing the pinned host key), the ngrok API (tunnels tagged with that key's fingerprint) and the last address.

A Drive code newer than the pin with another host key is a runtime this laptop never accepted: it is never a
candidate, and the relay says why. Standard library only (and light): the relay runs at every ssh connection.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Optional

from colab_bootstrap import conncode, drive_layout

from ..paths import Paths
from ..session import Session
from . import ngrok_api_key

LAST = "the last address"  # the source of the Host block's own HostName and Port


@dataclass(frozen=True)
class Candidate:
    host: str
    port: int
    tunnel: str  # "ngrok", "local" or "cloudflared" (reached through `cloudflared access ssh`)
    since: float  # when it appeared (seconds since the epoch): a code's mtime, a tunnel's start, the connect
    source: str  # for messages: "Drive (PATH)", "the ngrok API", "the last address"


@dataclass
class Found:
    candidates: list[Candidate] = field(default_factory=list)
    refused: Optional[str] = None  # why the newest runtime on Drive is not used (another host key)


def parse_time(text: str) -> float:
    """An ISO 8601 time ("2026-12-03T06:43:53Z") as seconds since the epoch; 0 when there is none."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else 0.0
    except ValueError:
        return 0.0


def _own_key_id(paths: Paths) -> Optional[str]:
    """The laptop key's runtimes folder name; None (look in every folder) when the key cannot be read."""
    try:
        return drive_layout.key_id(paths.public_key.read_text(encoding="ascii"))
    except (OSError, ValueError, IndexError):
        return None


def drive_codes(folder: Path, key_id: Optional[str]) -> list[tuple[float, Path, conncode.ConnectionInfo]]:
    """The decodable codes under FOLDER's runtimes folder (KEY_ID's only, when known), newest first."""
    runtimes = folder / drive_layout.RUNTIMES_FOLDER
    name = drive_layout.CODE_NAME
    paths = [runtimes / key_id / name] if key_id else list(runtimes.glob(f"*/{name}"))
    found = []
    for path in paths:
        read = read_code_file(path)
        if read is None:
            continue
        mtime, text = read
        try:
            info = conncode.decode(text)
        except conncode.CodeError:
            continue
        found.append((mtime, path, info))
    return sorted(found, key=lambda item: item[0], reverse=True)


def read_code_file(path: Path) -> Optional[tuple[float, str]]:
    """PATH's mtime and text when it is a regular file (never through a symlink, never waiting on a FIFO) of at
    most a code's length; None for anything else: whoever can write Drive cannot hang or flood the relay."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > conncode.MAX_CODE_LENGTH + 2:
            return None
        data = os.read(fd, conncode.MAX_CODE_LENGTH + 3)
    except OSError:
        return None
    finally:
        os.close(fd)
    return info.st_mtime, data.decode("utf-8", errors="replace")


def _from_drive(session: Session, paths: Paths, pinned_since: float, found: Found) -> None:
    for mtime, path, info in drive_codes(Path(session.drive_folder), _own_key_id(paths)):
        if info.hostkey == session.hostkey:
            found.candidates.append(Candidate(info.host, info.port, info.tunnel, mtime, f"its code on Drive: {path}"))
        elif mtime > pinned_since and found.refused is None:
            found.refused = (f"the newest runtime on Drive ({path}, {info.host}:{info.port}) shows host key "
                             f"{info.fingerprint}, not the pinned {session.fingerprint}: refused; run "
                             "`colabssh connect` with its code")


def _from_ngrok(session: Session, found: Found, warn: list[str]) -> None:
    key = ngrok_api_key()
    if not key:
        return
    from .ngrok_api import NgrokApiError, tagged_addresses

    try:
        for host, port, started in tagged_addresses(key, session.fingerprint):
            found.candidates.append(Candidate(host, port, "ngrok", started, "the ngrok API"))
    except NgrokApiError as exc:
        warn.append(str(exc))


def find(session: Optional[Session], host: str, port: int, tunnel: str, paths: Paths,
         warn: list[str]) -> Found:
    """The candidates for a connection ssh asked for at HOST:PORT (the Host block's HostName and Port).

    When the recorded session is not at HOST:PORT, the config is newer than sessions.json (connect's own check
    of a new code): only HOST:PORT is tried."""
    found = Found()
    own_since = parse_time(session.connected_at) if session else 0.0
    found.candidates.append(Candidate(host, port, tunnel, own_since, LAST))
    if session is None or (session.host, session.port) != (host, port) or not session.pinned:
        return found
    if session.drive_folder:
        _from_drive(session, paths, own_since, found)
    _from_ngrok(session, found, warn)
    newest: dict[tuple[str, int, str], Candidate] = {}
    for candidate in sorted(found.candidates, key=lambda c: c.since, reverse=True):
        place = (candidate.host, candidate.port, candidate.tunnel)
        # the runtime's own code on Drive names the address ssh was given: nothing new to say about it
        newest.setdefault(place, candidate if place != (host, port, tunnel) else replace(candidate, source=LAST))
    found.candidates = list(newest.values())
    return found
