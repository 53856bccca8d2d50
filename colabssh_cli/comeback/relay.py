"""The ssh ProxyCommand of a session with a Drive folder: find the runtime's current address, then carry the bytes.

    "<python>" -m colabssh_cli.comeback.relay ALIAS %h %p TUNNEL

It tries finder.py's candidates newest first (one that refuses the TCP connection is skipped). With OpenSSH's
`ProxyUseFdpass yes`, ssh's stdin and stdout are one unix socket: the relay hands ssh the connected socket and
exits, so no relay stays in the data path. Otherwise (Windows, or VSCodium's Open Remote-SSH, which runs the
ProxyCommand itself with pipes) it pumps stdin/stdout <-> the socket. A cloudflared runtime is reached through
`cloudflared access ssh --hostname HOST`. The pinned host key (StrictHostKeyChecking yes, HostKeyAlias) stays
the guard: ssh refuses an address that presents another key.
Light on purpose (no typer, no rich): it runs at every connection.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
import threading
from typing import NoReturn, Optional

from ..paths import Paths
from ..session import Session
from . import notes
from .finder import LAST, Candidate, find

CONNECT_TIMEOUT = 5.0  # seconds per candidate; ssh's ConnectTimeout (20 s) covers the banner of the chosen one
NOTHING = 255  # what ssh itself returns when it cannot connect
HINT = "run the notebook, or connect the new code (`colabssh connect CODE`)"
_CHUNK = 1 << 20


SAID: list[str] = []  # this run's lines, kept for colabssh's own commands when the relay fails (notes.py)


def say(line: str) -> None:
    """One line on stderr; where ssh sent stderr to /dev/null (ControlPersist), on the terminal when there is one."""
    text = f"colabssh relay: {line}\n"
    SAID.append(line)
    try:
        target = sys.stderr
        if _is_null(2):
            target = open("/dev/tty", "w")  # noqa: SIM115  (closed below)
        try:
            target.write(text)
            target.flush()
        finally:
            if target is not sys.stderr:
                target.close()
    except (OSError, ValueError):
        pass


def _is_null(fd: int) -> bool:
    try:
        info, null = os.fstat(fd), os.stat(os.devnull)
    except OSError:
        return False
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == null.st_rdev


def fd_passing() -> bool:
    """Whether ssh asked for the socket (ProxyUseFdpass): stdin and stdout are the SAME unix socket."""
    try:
        first, second = os.fstat(0), os.fstat(1)
    except OSError:
        return False
    return stat.S_ISSOCK(first.st_mode) and (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def pass_fd(fd: int) -> None:
    """Give FD to ssh over the socket on stdout (what OpenSSH's mm_receive_fd reads: one byte and the fd)."""
    channel = socket.socket(fileno=os.dup(1))
    try:
        socket.send_fds(channel, [b"\0"], [fd])
    finally:
        channel.close()


def _downstream(conn: socket.socket) -> None:
    """CONN -> stdout until the runtime closes, through one buffer (no allocation per chunk)."""
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    while True:
        size = conn.recv_into(buffer)
        if not size:
            return
        done = 0
        while done < size:
            done += os.write(1, view[done:size])


def pump(conn: socket.socket) -> NoReturn:
    """stdin -> CONN and CONN -> stdout until the runtime closes; then exit (ssh closed its side, or will)."""

    def upstream() -> None:
        try:
            while True:
                data = os.read(0, _CHUNK)
                if not data:
                    break
                conn.sendall(data)
        except OSError:
            pass
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    threading.Thread(target=upstream, daemon=True).start()
    try:
        _downstream(conn)
    except OSError:
        pass
    os._exit(0)


def cloudflared(host: str, passing: bool) -> NoReturn:
    """`cloudflared access ssh --hostname HOST`: exec'd in pump mode; in fd passing mode started detached on one
    end of a socketpair whose other end goes to ssh."""
    import shutil

    binary = shutil.which("cloudflared")
    if not binary:
        say("this runtime is behind cloudflared, and `cloudflared` is not installed on this machine")
        sys.exit(NOTHING)
    argv = [binary, "access", "ssh", "--hostname", host]
    if not passing:
        os.execv(binary, argv)
    ours, theirs = socket.socketpair()
    if os.fork() == 0:  # the child: cloudflared on THEIRS, in a session of its own
        try:
            os.setsid()
            os.dup2(theirs.fileno(), 0)
            os.dup2(theirs.fileno(), 1)
            os.execv(binary, argv)
        finally:
            os._exit(NOTHING)  # only when exec failed
    pass_fd(ours.fileno())
    sys.exit(0)


def reach(candidate: Candidate, last: bool = False) -> Optional[socket.socket]:
    try:
        conn = socket.create_connection((candidate.host, candidate.port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        if not last:
            say(f"{candidate.host}:{candidate.port} ({candidate.source}) does not answer ({exc.strerror or exc}); "
                "trying the next")
        return None
    conn.settimeout(None)
    return conn


def _session(alias: str, warn: list[str]) -> tuple[Paths, Optional[Session]]:
    """The alias's recorded session (None when there is none yet: connect's check of a first code)."""
    from ..errors import ColabsshError
    from ..session import load_sessions

    paths = Paths.from_env()
    try:
        return paths, load_sessions(paths).get(alias)
    except (ColabsshError, ValueError) as exc:
        warn.append(f"the session file cannot be read ({getattr(exc, 'message', exc)}): only the Host block's "
                    "address is tried")
        return paths, None


def main(argv: list[str]) -> int:
    if len(argv) != 4 or not argv[2].isdigit():
        say("usage: python -m colabssh_cli.comeback.relay ALIAS HOST PORT TUNNEL (an ssh ProxyCommand)")
        return 2
    alias, host, port, tunnel = argv[0], argv[1], int(argv[2]), argv[3]
    warn: list[str] = []
    paths, session = _session(alias, warn)
    found = find(session, host, port, tunnel, paths, warn)
    for line in warn:
        say(line)
    if found.refused:
        say(found.refused)
    passing = fd_passing()
    for number, candidate in enumerate(found.candidates, 1):
        if candidate.tunnel == "cloudflared":
            if candidate.source != LAST:
                say(f"'{alias}' is at {candidate.host} now ({candidate.source})")
            notes.reached(paths, alias, candidate.host, candidate.source != LAST)
            cloudflared(candidate.host, passing)
        conn = reach(candidate, last=number == len(found.candidates))
        if conn is None:
            continue
        if candidate.source != LAST:
            say(f"'{alias}' is at {candidate.host}:{candidate.port} now ({candidate.source}); ssh checks its "
                "host key against the pin")
        notes.reached(paths, alias, f"{candidate.host}:{candidate.port}", candidate.source != LAST)
        if passing:
            pass_fd(conn.fileno())
            return 0
        pump(conn)
    tried = ", ".join(f"{c.host}:{c.port}" for c in found.candidates)
    say(f"no runtime of '{alias}' answers (tried {tried})")
    say(f"hint: {HINT}")
    notes.keep(paths, alias, SAID)
    return NOTHING


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
