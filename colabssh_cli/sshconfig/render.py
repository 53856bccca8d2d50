"""How one session's ``Host`` block reads: the entry (a view of a ``Session``), its rendering and the ControlPath
folder.

The files it goes into, and the rules for changing them, are described in ``plan.py``.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import BAD_INPUT, FAILURE, ColabsshError
from ..paths import Paths
from ..session import Login, Session, Transport
from .files import fsync_dir, make_private_dir

BEGIN_MARKER = "# >>> colabssh managed block (do not edit; `colabssh forget` removes it) >>>"
END_MARKER = "# <<< colabssh managed block <<<"
CREATED_NOTE = "# (colabssh created this file; `colabssh forget` removes it again when nothing else is in it)"
OWN_HEADER = "# colabssh sessions: one Host block per session, managed by colabssh (`colabssh forget ALIAS`).\n"

SOCKET_PATH_LIMIT = 104  # sizeof(sun_path) on macOS/BSD (108 on Linux), counting the final NUL
# ControlPath is "<dir>/%C": "/" + 40 hex digits; while setting the socket up ssh binds "<path>.<16 random>".
_CONTROL_PATH_EXTRA = 1 + 40 + 17 + 1

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9_:][A-Za-z0-9.:_-]*")  # conncode.validate_host decides; this is a backstop
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*\$?")
HOST_KEY = re.compile(r"(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,2}")
_PLAIN = re.compile(r"[A-Za-z0-9_./:@+,~%-]+")
_STRICT = ("yes", "ask", "accept-new")
_PROXY_PATH = re.compile(r"[A-Za-z0-9 /._+\-:()~@,=]+")  # no quotes, $, `, %, \ or control characters


# ------------------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class HostEntry:
    alias: str
    hostname: str
    port: int
    user: str
    identity_file: Path
    known_hosts: Path
    host_key_alias: str  # stable per alias, e.g. f"colabssh-{alias}"
    strict_host_key_checking: str  # "yes" when pinned from the code; "ask" for unpinned (password) sessions
    proxy_command: str | None = None  # already built, e.g. '"/abs/cloudflared" access ssh --hostname %h'
    control_dir: Path | None = None  # connection sharing folder; None = no ControlMaster (e.g. Windows)
    password_auth: bool = False  # colab-ssh sessions: allow a password, still IdentitiesOnly
    fd_passing: bool = False  # ProxyUseFdpass yes: the ProxyCommand hands ssh a connected socket and exits
    connect_timeout: int | None = 20  # seconds; None for a ProxyCommand that may take minutes (colab creating
    # a runtime): OpenSSH's ConnectTimeout covers the banner and ends the ProxyCommand when it runs out


def host_key_alias(alias: str) -> str:
    """The stable HostKeyAlias of a session: its pin survives a new host name or port."""
    return f"colabssh-{alias}"


def entry_for(session: Session, paths: Paths, *, proxy_command: Optional[str] = None,
              control_dir: Optional[Path] = None, connect_timeout: Optional[int] = 20,
              fd_passing: bool = False) -> HostEntry:
    """The Host block of SESSION: what its transport adds (a ProxyCommand, connection sharing, no ConnectTimeout
    for a ProxyCommand that may take minutes) is passed in by the transport (connection/)."""
    if session.pinned:
        strict = "yes"  # the code's key, pinned in colabssh's known_hosts
    elif session.tunnel == Transport.COLAB_CLI:
        strict = "accept-new"  # pinned at first contact through Colab's authenticated connection
    else:
        strict = "ask"  # colab-ssh runtimes: ssh (or VS Code) asks once
    return HostEntry(alias=session.alias, hostname=session.host, port=session.port, user=session.user,
                     identity_file=paths.key, known_hosts=paths.known_hosts,
                     host_key_alias=host_key_alias(session.alias), strict_host_key_checking=strict,
                     proxy_command=proxy_command, control_dir=control_dir,
                     password_auth=session.auth == Login.PASSWORD, connect_timeout=connect_timeout,
                     fd_passing=fd_passing and proxy_command is not None)


def _no_controls(what: str, value: str) -> None:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"{what} contains a control character: {value!r}")


def word(what: str, value: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"{what} is not allowed in an ssh config: {value!r}")
    return value


def quoted(value: str) -> str:
    """VALUE as one ssh_config argument: bare when plain, else in double quotes."""
    return value if _PLAIN.fullmatch(value) else f'"{value}"'


def path_text(what: str, path: Path) -> str:
    """An absolute path as ssh_config text (forward slashes; refused when ssh could misread it)."""
    if not path.is_absolute():
        raise ValueError(f"{what} must be an absolute path (ssh expands ~ from the password database): {path}")
    value = path.as_posix()
    _no_controls(what, value)
    for bad in ('"', "\\", "${"):
        if bad in value:
            raise ValueError(f"{what} contains {bad!r}, which ssh would misread: {value!r}")
    return value


def _token_path(what: str, path: Path, suffix: str = "") -> str:
    """A path for an option that expands %-tokens: a literal '%' is written '%%'."""
    return quoted(path_text(what, path).replace("%", "%%") + suffix)


def proxy_path_is_safe(path: str) -> bool:
    """Whether PATH may stand in double quotes in a ProxyCommand (ssh runs it with /bin/sh): nothing that the
    shell or ssh's %-tokens would read. A backslash only on Windows, where it separates folders."""
    return bool(_PROXY_PATH.fullmatch(path.replace("\\", "/") if os.name == "nt" else path))


def control_path_fits(control_dir: Path) -> bool:
    """Whether ``CONTROL_DIR/%C`` stays under the socket path limit while ssh sets the socket up."""
    return len(os.fsencode(str(control_dir))) + _CONTROL_PATH_EXTRA <= SOCKET_PATH_LIMIT


def render_host_entry(entry: HostEntry) -> str:
    """The session's ``Host`` block (LF line endings, ending with a newline)."""
    alias = word("the alias", entry.alias, NAME)
    hostname = word("the host name", entry.hostname, _HOSTNAME)
    user = word("the user name", entry.user, _USER)
    key_alias = word("the host key alias", entry.host_key_alias, NAME)
    if isinstance(entry.port, bool) or not isinstance(entry.port, int) or not 1 <= entry.port <= 65535:
        raise ValueError(f"the port must be 1-65535: {entry.port!r}")
    if entry.strict_host_key_checking not in _STRICT:
        raise ValueError(f"StrictHostKeyChecking must be one of {', '.join(_STRICT)}: "
                         f"{entry.strict_host_key_checking!r}")
    lines = [
        f"Host {alias}",
        f"  HostName {hostname}",
        f"  Port {entry.port}",
        f"  User {user}",
        f"  IdentityFile {_token_path('the identity file', entry.identity_file)}",
        "  IdentitiesOnly yes",
        f"  HostKeyAlias {key_alias}",
        f"  UserKnownHostsFile {_token_path('the known_hosts file', entry.known_hosts)}",
        f"  StrictHostKeyChecking {entry.strict_host_key_checking}",
        "  CheckHostIP no",
        "  UpdateHostKeys no",
        "  HashKnownHosts no",
    ]
    if entry.password_auth:
        lines.append("  PasswordAuthentication yes")
    else:
        lines += ["  PasswordAuthentication no", "  KbdInteractiveAuthentication no"]
    lines += ["  ServerAliveInterval 15", "  ServerAliveCountMax 4"]
    if entry.connect_timeout is not None:
        if isinstance(entry.connect_timeout, bool) or not 1 <= entry.connect_timeout <= 3600:
            raise ValueError(f"the connect timeout must be 1-3600 s: {entry.connect_timeout!r}")
        lines.append(f"  ConnectTimeout {entry.connect_timeout}")
    if entry.proxy_command is not None:
        command = entry.proxy_command.strip()
        _no_controls("the ProxyCommand", command)
        if not command:
            raise ValueError("the ProxyCommand is empty")
        lines.append(f"  ProxyCommand {command}")
        if entry.fd_passing:
            lines.append("  ProxyUseFdpass yes")
    if entry.control_dir is not None:
        if not control_path_fits(entry.control_dir):
            raise ValueError(f"the connection sharing folder is too long for a socket path: {entry.control_dir}")
        lines += ["  ControlMaster auto",
                  f"  ControlPath {_token_path('the connection sharing folder', entry.control_dir, '/%C')}",
                  "  ControlPersist 10m"]
    return "\n".join(lines) + "\n"


def control_dir_for(paths: Paths, *, short_root: Path = Path("/tmp")) -> Path:
    """Where connection-sharing sockets go: ``~/.ssh/colabssh/cm`` when its socket paths fit the
    104-byte limit, else a short private folder of this home's own, ``/tmp/colabssh-<uid>/<home tag>`` (0700,
    ours): each home has its own, so one home's ``forget`` never removes a folder another home's ssh needs.

    Nothing is created here (`apply` creates the folder of a planned entry; `ensure_control_dir`
    is there for the remote seam). A fallback folder that exists but is not safely ours is refused.
    On Windows, pass ``control_dir=None`` to HostEntry instead: OpenSSH for Windows has no ControlMaster.
    """
    if control_path_fits(paths.control_dir) or not hasattr(os, "geteuid"):
        return paths.control_dir
    shared = short_control_dir(short_root)
    short = home_control_dir(paths, short_root)
    _check_private_dir(shared)
    _check_private_dir(short)
    if not control_path_fits(short):
        raise ColabsshError(f"no folder short enough for ssh's connection sharing sockets ({short})",
                            "use a shorter home folder", FAILURE)
    return short


def short_control_dir(short_root: Path = Path("/tmp")) -> Path:
    """The short fallback folders' parent, shared by the long homes of this user: ``/tmp/colabssh-<uid>``."""
    return short_root / f"colabssh-{os.geteuid()}"


def home_control_dir(paths: Paths, short_root: Path = Path("/tmp")) -> Path:
    """A long home's own short socket folder: ``/tmp/colabssh-<uid>/`` and 10 hex digits of its path's SHA-256."""
    import hashlib

    return short_control_dir(short_root) / hashlib.sha256(os.fsencode(str(paths.home))).hexdigest()[:10]


def _check_private_dir(folder: Path) -> None:
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise ColabsshError(f"{folder} exists and is not a private folder of this user",
                            f"remove {folder} (someone else may have made it), then try again", BAD_INPUT)


def ensure_control_dir(folder: Path) -> None:
    """Create the connection sharing folder (0700) if missing: ssh fails when it is not there. Its parent may be
    the shared ``/tmp/colabssh-<uid>``, which another home's ``forget`` removes when it is empty: made again."""
    if hasattr(os, "geteuid"):
        _check_private_dir(folder.parent)
        _check_private_dir(folder)
    try:
        make_private_dir(folder, parents=True)
    except ColabsshError:  # the parent went between its making and this folder's: once more
        make_private_dir(folder, parents=True)
    if hasattr(os, "geteuid"):
        _check_private_dir(folder)
        if os.stat(folder).st_mode & 0o077:
            os.chmod(folder, 0o700)




def remove_empty_control_dir(folder: Path) -> bool:
    """Remove FOLDER, a connection sharing folder colabssh makes, when nothing is in it (no shared connection)
    and it is plainly colabssh's: a real folder (not a link), this user's, mode 0700. Anything else stays;
    True when it went."""
    if not hasattr(os, "geteuid"):
        return False
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    if (stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid()
            or stat.S_IMODE(info.st_mode) != 0o700):
        return False
    try:
        os.rmdir(folder)  # fails when a socket (or anything) is in it
    except OSError:
        return False
    fsync_dir(folder.parent)
    return True


_CONTROL_PATH_LINE = re.compile(rb'^[ \t]*ControlPath[ \t]+"?([^"\n]+)/%C"?[ \t]*$', re.MULTILINE | re.IGNORECASE)


def control_dirs_written(own_config: bytes) -> set[Path]:
    """The folders of the ``ControlPath DIR/%C`` lines colabssh writes (``render_host_entry``), read from the text
    alone: what a command that runs ssh reads on every start, without parsing the config's blocks
    (``control_dirs_in_use`` parses them, as ssh does, where a folder is to be removed)."""
    return {Path(os.fsdecode(match[1]).replace("%%", "%")) for match in _CONTROL_PATH_LINE.finditer(own_config)}


def control_dirs_in_use(own_config: bytes) -> set[Path]:
    """The connection sharing folders the Host blocks of colabssh's config name (ControlPath DIR/%C)."""
    from .plan import block_settings, own_blocks  # plan imports this module

    found = set()
    for _, chunk in own_blocks(own_config)[1]:
        value = block_settings(chunk).get("controlpath", "")
        if value.endswith("/%C"):
            found.add(Path(value[:-3].replace("%%", "%")))
    return found


def remove_unused_control_dirs(paths: Paths, own_config: bytes | None,
                               short_root: Path = Path("/tmp")) -> list[Path]:
    """Remove this home's connection sharing folder (``~/.ssh/colabssh/cm``, or ``/tmp/colabssh-<uid>/<home tag>``
    where the home's path is too long for sockets) when no Host block of OWN_CONFIG names it and it is empty
    (``remove_empty_control_dir``), then ``/tmp/colabssh-<uid>`` itself once no home has a folder in it; return
    those removed. A folder a block names stays even when empty: ssh fails when it cannot make its socket. The
    short folder of another home (a long one, of the same user) is never this home's to remove."""
    if not hasattr(os, "geteuid"):
        return []
    used = control_dirs_in_use(own_config or b"")
    candidates = [paths.control_dir]
    if not control_path_fits(paths.control_dir):
        candidates += [home_control_dir(paths, short_root), short_control_dir(short_root)]
    return [folder for folder in candidates if folder not in used and remove_empty_control_dir(folder)]
