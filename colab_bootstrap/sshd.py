"""A key-only sshd of colabssh's own: its own config, host key and state folder.

Never touches ``/etc/ssh/sshd_config`` (sshd keeps the first value it reads, so
appending there is unreliable). Listens on 127.0.0.1 only: the tunnel connects
locally. Runs in the foreground (``-D``) as a child of the cell's process, with a
PidFile in the state folder so that a re-run stops a leftover first (and /proc for one
whose pid file was lost): with the connections it serves, waited for, so the new sshd
takes the same port. The port is claimed before anything is stopped: a port another
program holds is an error that names it, and the earlier run serves on.

``StrictModes no`` is safe here: the only file it guards is our own
``authorized_keys``, which this module writes (0600) in a state folder it creates
and checks to be owned by us with mode 0700; StrictModes would otherwise refuse
any state folder below a world-writable one such as /tmp.

``AllowUsers`` and the connection code name the user this process runs as, from the
password database (``pwd``), never from ``$USER``/``$LOGNAME``, which anyone can set.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from . import processes
from .errors import BootstrapError
from .files import write_private
from .session_env import setenv_lines

CONFIG_NAME = "sshd_config"
PID_NAME = "sshd.pid"
LOG_NAME = "sshd.log"
HOST_KEY_NAME = "ssh_host_ed25519_key"
AUTHORIZED_KEYS_NAME = "authorized_keys"
READY_TIMEOUT = 15.0
PORT_TIMEOUT = 5.0  # for the port to be free once the earlier run's sshd and its connections are gone
HEADER = "# colabssh's own sshd: key only, loopback only, one authorised key"
SNIPPET_COMMENT = "# login-shell snippet: "  # names the profile snippet this run's login shells rely on


@dataclass
class SshdProcess:
    process: subprocess.Popen[bytes]
    port: int
    host_key: str  # "ssh-ed25519 BASE64"
    state: Path

    def stop(self) -> None:
        """Stop this sshd and the connections it serves; its pid file goes unless a later run wrote its own."""
        if self.process.poll() is None:  # not reaped yet, so its pid is still its own
            processes.terminate_with_sessions(self.process.pid)
            self.process.poll()
        pidfile = self.state / PID_NAME
        try:
            if pidfile.read_text().strip() == str(self.process.pid):  # not a later run's
                pidfile.unlink()
        except OSError:
            pass


SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin")  # a plain user's PATH often lacks them


def find_sshd(say: Callable[[str], None], override: str = "", install: bool = True,
              is_root: bool | None = None) -> str:
    """sshd's absolute path; on a root runtime without it, install openssh-server with apt.

    ``override`` (``COLABSSH_SSHD``) names the sshd to use: a path, or a name looked up
    on PATH only. With it there is no fallback and never an apt install.
    """
    if override:
        found = shutil.which(override)
        if found:
            return os.path.abspath(found)
        raise BootstrapError(f"COLABSSH_SSHD={override} is not an sshd program this machine has",
                             "install openssh-server, or point COLABSSH_SSHD at sshd (e.g. /usr/sbin/sshd)")
    found = shutil.which("sshd") or next(
        (path for path in (os.path.join(d, "sshd") for d in SBIN_DIRS) if os.access(path, os.X_OK)), None)
    if found:
        return os.path.abspath(found)
    root = os.geteuid() == 0 if is_root is None else is_root
    apt = shutil.which("apt-get")
    if install and root and apt:
        say("sshd is missing: installing openssh-server with apt-get (about a minute)...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "openssh-server"]):
            subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
        return find_sshd(say, install=False, is_root=root)
    if root and apt and install is False:
        raise BootstrapError("OpenSSH's sshd is not installed on this machine, and apt-get could not install it",
                             "check the network, run `apt-get install openssh-server`, then run the cell again")
    hint = ("install it: apt-get install openssh-server" if root
            else "install it: sudo apt-get install openssh-server (or run the cell as root)")
    raise BootstrapError("OpenSSH's sshd is not installed on this machine", hint)


def prepare_state(state: Path) -> None:
    """Make the state folder (0700) or take an existing one, only if it is a real folder of our own.

    Checked before its mode is touched, through one descriptor opened without following a symlink:
    as root, a chmod first would rewrite another user's folder (or a symlink's target) and only then refuse.
    """
    hint = "set COLABSSH_STATE to a folder of your own"
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BootstrapError(f"cannot make the state folder {state}: {exc.strerror or exc}", hint) from None
    try:
        fd = os.open(state, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        what = "a symlink" if os.path.islink(state) else (exc.strerror or str(exc)).lower()
        raise BootstrapError(f"the state folder {state} is not a folder colabssh can use ({what})", hint) from None
    try:
        if os.fstat(fd).st_uid != os.geteuid():
            raise BootstrapError(f"the state folder {state} belongs to another user", hint)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def login_name() -> str:
    """The user this process runs as, from the password database (not $USER, which the environment sets)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        raise BootstrapError(f"this process's user (uid {uid}) has no entry in the password database",
                             "sshd cannot log anyone in as a user it cannot look up; run the cell as a "
                             "user listed in /etc/passwd") from None


def ensure_host_key(state: Path) -> str:
    """The runtime's ed25519 host key (made once per state folder); returns the public line."""
    key = state / HOST_KEY_NAME
    if not key.exists() or not key.with_suffix(".pub").exists():
        key.unlink(missing_ok=True)
        key.with_suffix(".pub").unlink(missing_ok=True)
        keygen = shutil.which("ssh-keygen")
        if not keygen:
            raise BootstrapError("ssh-keygen is missing", "install it: apt-get install openssh-client")
        made = subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "colabssh-runtime", "-f", str(key)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
        if made.returncode != 0:
            detail = (made.stderr.strip().splitlines() or [f"exit status {made.returncode}"])[-1]
            raise BootstrapError(f"ssh-keygen could not make the runtime's host key: {detail}",
                                 f"check that {state} is writable and has room, then run the cell again")
    parts = key.with_suffix(".pub").read_text().split()
    return f"{parts[0]} {parts[1]}"


def write_authorized_key(state: Path, key_line: str) -> Path:
    path = state / AUTHORIZED_KEYS_NAME
    write_private(path, key_line + "\n")
    return path


def render_config(state: Path, port: int, user: str, env: Mapping[str, str],
                  version: tuple[int, int] | None = None, snippet: Path | None = None) -> str:
    """The dedicated sshd_config. ``version`` is sshd's (major, minor), for the options only newer sshds know;
    ``snippet`` is the login-shell snippet this run installs (recorded, so a stop knows who still needs it)."""
    lines = [
        HEADER,
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {state / HOST_KEY_NAME}",
        f"PidFile {state / PID_NAME}",
        f"AuthorizedKeysFile {state / AUTHORIZED_KEYS_NAME}",
        "AuthenticationMethods publickey",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitEmptyPasswords no",
        "HostbasedAuthentication no",
        "PermitRootLogin prohibit-password",
        f"AllowUsers {user}",
        "UsePAM no",
        "StrictModes no",
        "PermitUserEnvironment no",
        # the public tunnel ends here: a scanner gets 3 tries, 30 s and a share of 10 unauthenticated slots
        "MaxAuthTries 3",  # colabssh's Host block offers exactly one key (IdentitiesOnly)
        "LoginGraceTime 30",
        "MaxStartups 10:30:60",
        # forwarding: only what VS Code and `colabssh forward` use (ssh -D and -L: direct-tcpip channels;
        # remote.SSH.remoteServerListenOnSocket: -L to a Unix socket); never -R, X11, tun, agent
        "AllowTcpForwarding local",
        "AllowStreamLocalForwarding local",
        "GatewayPorts no",
        "PermitTunnel no",
        "X11Forwarding no",
        "AllowAgentForwarding no",
        "PrintMotd no",
        "ClientAliveInterval 30",
        "ClientAliveCountMax 4",
        "LogLevel VERBOSE",
        "Subsystem sftp internal-sftp",
    ]
    lines += per_source_penalties_lines(version)
    if snippet is not None:
        lines.append(SNIPPET_COMMENT + str(snippet))
    lines += setenv_lines(env, state / "session-env.sh")
    return "\n".join(lines) + "\n"


NEWEST_KNOWN_SSHD = (10, 5)  # the newest OpenSSH whose PerSourcePenalties classes were read for this


def per_source_penalties_lines(version: tuple[int, int] | None) -> list[str]:
    """``PerSourcePenalties`` for sshd 9.8 and newer (older ones refuse the keyword): penalise crashes only.

    Every tunnel client arrives from 127.0.0.1, so a penalty shuts out everyone, the owner too. What any
    internet scanner does (a wrong key, no key, an unknown user, idling past LoginGraceTime) must cost
    nothing; a crash of sshd is what only an exploit attempt causes, and refusing new connections for
    90 s after one slows an attack that needs many tries (existing connections are never cut).
    9.8 and 9.9 charge a LoginGraceTime timeout at the crash rate (fixed in 10.0), and a release newer
    than the ones read may add a class with a default above zero (10.3 added ``invaliduser``): both
    get ``PerSourcePenalties no``.
    """
    if version is None or version < (9, 8):
        return []
    if version < (10, 0) or version > NEWEST_KNOWN_SSHD:
        return ["PerSourcePenalties no"]
    classes = ["crash:90s", "authfail:0s", "noauth:0s", "grace-exceeded:0s"]
    if version >= (10, 3):
        classes.append("invaliduser:0s")
    return ["PerSourcePenalties " + " ".join(classes)]


def sshd_version(sshd: str) -> tuple[int, int] | None:
    """sshd's OpenSSH (major, minor), from `sshd -V` (or its usage text); None when it does not say."""
    try:
        out = subprocess.run([sshd, "-V"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", out.stdout + out.stderr)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


_LISTENER_CONFIG = re.compile(r"(?:^|\s)-f\s?(/.*?/" + CONFIG_NAME + r")(?:\s|$)")
_PER_CONNECTION = re.compile(r"\s-R(?:\s|$)")  # a connection's sshd, re-executed, before it renames itself


def listener_config(pid: int) -> Path | None:
    """The config an sshd listener (not a connection's sshd) was started with; None for any other process."""
    line = " ".join(processes.cmdline(pid))
    if not line.startswith(("sshd", "/")) or _PER_CONNECTION.search(line):
        return None
    match = _LISTENER_CONFIG.search(line)
    return Path(match.group(1)) if match and "sshd" in line.split(" -f", 1)[0] else None


def listeners_of(config: Path) -> list[int]:
    """The live sshd listeners started with ``config``: this state folder's sshd, whatever its pid file says."""
    return [pid for pid in processes.live_pids() if listener_config(pid) == config and not processes.is_gone(pid)]


def is_colabssh_config(config: Path) -> bool:
    """True when ``config`` is an sshd_config colabssh wrote (its first line)."""
    try:
        with open(config, encoding="utf-8", errors="replace") as handle:
            return handle.readline().rstrip("\n") == HEADER
    except OSError:
        return False


def snippet_in_use(snippet: Path) -> bool:
    """True while a live colabssh sshd on this machine names ``snippet`` in its config: its login shells
    rely on it. An sshd config this user cannot read counts too (it may be another user's runtime)."""
    for pid in processes.live_pids():
        config = listener_config(pid)
        if config is None or processes.is_gone(pid):
            continue
        try:
            lines = config.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return True
        if lines[:1] == [HEADER] and SNIPPET_COMMENT + str(snippet) in lines:
            return True
    return False


def stop_leftover(state: Path, say: Callable[[str], None], whose: str = "of an earlier run") -> None:
    """Stop every sshd an earlier run of the cell left behind for this state folder (and only those).

    The pid file names the last one; /proc finds the rest (a pid file lost to a crash, or overwritten).
    Each is stopped with the connections it serves, and waited for.
    """
    config = state / CONFIG_NAME
    pidfile = state / PID_NAME
    try:
        recorded = [int(pidfile.read_text().strip())]
    except (OSError, ValueError):
        recorded = []
    for pid in dict.fromkeys(recorded + listeners_of(config)):
        if listener_config(pid) == config and not processes.is_gone(pid):
            say(f"stopping the sshd {whose} (pid {pid})")
            processes.terminate_with_sessions(pid)
    pidfile.unlink(missing_ok=True)


def previous_port(state: Path) -> int:
    """The port the state folder's sshd was last configured with (0 when there is none)."""
    try:
        match = re.search(r"^Port (\d{1,5})$", (state / CONFIG_NAME).read_text(), re.MULTILINE)
    except OSError:
        return 0
    return int(match.group(1)) if match and 0 < int(match.group(1)) < 65536 else 0


def claim_port(state: Path, requested: int) -> int:
    """The port this run's sshd will listen on, decided before anything is stopped.

    A port held by this state folder's own earlier sshd counts as free: that sshd is stopped next. A port
    held by anything else is an error that names the holder. ``0`` (any port) prefers the earlier run's
    port, so the laptop's alias keeps working, and otherwise takes any free one.
    """
    if requested == 0:
        previous = previous_port(state)
        if previous and port_blocker(previous, state) is None:
            return previous
        return _any_free_port()
    blocker = port_blocker(requested, state)
    if blocker is not None:
        raise blocker
    return requested


def port_blocker(port: int, state: Path) -> BootstrapError | None:
    """None when nothing but this state folder's sshd (or a connection it is forking) listens on ``port``,
    else the error that says what holds it."""
    listening, holders = processes.port_holders(port)
    if not listening:
        return None
    ours = set(listeners_of(state / CONFIG_NAME))
    table = processes.parents()
    others = [pid for pid in holders if pid not in ours and table.get(pid) not in ours]
    if holders and not others:
        return None
    return _port_in_use(port, others)


def _port_in_use(port: int, holders: list[int]) -> BootstrapError:
    """The error for a port another program holds: who it is, and what to do."""
    where = f"port {port} on 127.0.0.1"
    if not holders:
        return BootstrapError(f"{where} is in use by a program this user cannot look into",
                              f"find it with `ss -ltnp 'sport = :{port}'` as root and stop it, or set "
                              "COLABSSH_PORT to a free port (0 picks one)")
    pid = holders[0]
    config = listener_config(pid)
    if config is not None and is_colabssh_config(config):
        return BootstrapError(f"{where} is in use by the sshd of another colabssh runtime "
                              f"(pid {pid}, state folder {config.parent})",
                              f"stop that runtime first: colabssh_stop() in its notebook, or `kill {pid}`")
    program = " ".join(processes.cmdline(pid)) or processes.executable(pid) or "unknown program"
    if len(program) > 80:
        program = program[:77] + "..."
    return BootstrapError(f"{where} is in use by pid {pid} ({program})",
                          "stop that program, or set COLABSSH_PORT to a free port (0 picks one)")


def _any_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bindable(port: int) -> bool:
    """True when sshd could bind 127.0.0.1:``port`` now. Probed as sshd binds (SO_REUSEADDR): connections
    of a stopped sshd in TIME_WAIT, or still closing, would fail a plain bind but never sshd's."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        except OSError:
            return False
        return True


def wait_until_bindable(port: int, state: Path, timeout: float = PORT_TIMEOUT) -> None:
    """Return once sshd can bind ``port``; else the error that says what holds it."""
    deadline = time.monotonic() + timeout
    while not bindable(port):
        if time.monotonic() > deadline:
            raise port_blocker(port, state) or BootstrapError(
                f"port {port} on 127.0.0.1 is still taken {timeout:.0f} s after the earlier run's sshd stopped",
                f"run the cell again; `ss -tanp 'sport = :{port}'` shows what holds it")
        time.sleep(0.02)


@dataclass
class Prepared:
    """Everything a new sshd needs, checked while the earlier run's sshd still serves."""

    sshd: str
    state: Path
    port: int
    host_key: str  # "ssh-ed25519 BASE64"
    config_text: str


def prepare(state: Path, port: int, public_key_line: str, env: Mapping[str, str],
            say: Callable[[str], None], sshd_override: str = "", snippet: Path | None = None) -> Prepared:
    """Find sshd, claim the port, make sure of the host key and check the config with ``sshd -t``, all before
    the earlier run's sshd is touched: whatever fails here leaves that sshd serving."""
    sshd = find_sshd(say, sshd_override)
    prepare_state(state)
    port = claim_port(state, port)
    host_key = ensure_host_key(state)
    write_authorized_key(state, public_key_line)
    text = render_config(state, port, login_name(), env, sshd_version(sshd), snippet)
    check_config(sshd, state, text)
    return Prepared(sshd, state, port, host_key, text)


def check_config(sshd: str, state: Path, text: str) -> None:
    """``sshd -t`` on TEXT, written beside the live config (the running sshd keeps its own)."""
    candidate = state / (CONFIG_NAME + ".check")
    write_private(candidate, text)
    try:
        check = subprocess.run([sshd, "-t", "-f", str(candidate)], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BootstrapError(f"sshd could not check colabssh's config: {exc}",
                             "check that COLABSSH_SSHD (or /usr/sbin/sshd) is OpenSSH's sshd") from None
    finally:
        candidate.unlink(missing_ok=True)
    if check.returncode != 0:
        detail = (check.stderr.strip().splitlines() or [f"exit status {check.returncode}, no detail"])[-1]
        if "hostkey" in detail.lower().replace(" ", ""):
            hint = (f"the runtime's host key in {state} is damaged: remove {state / HOST_KEY_NAME}* and run the "
                    "cell again (a new key needs a new `colabssh connect`)")
        else:
            hint = "check COLABSSH_SSHD; colabssh needs OpenSSH 8.7 or newer (SetEnv)"
        raise BootstrapError(f"sshd refused colabssh's config: {detail}; the earlier run (if any) serves on", hint)


def launch(prepared: Prepared, say: Callable[[str], None]) -> SshdProcess:
    """Stop the earlier run's sshd (with its connections), then start this one on the claimed port."""
    state, port = prepared.state, prepared.port
    stop_leftover(state, say)
    wait_until_bindable(port, state)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege separation
    config = state / CONFIG_NAME
    write_private(config, prepared.config_text)
    log = open(state / LOG_NAME, "ab")
    offset = log.seek(0, os.SEEK_END)
    process = subprocess.Popen([prepared.sshd, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                               stdout=log, stderr=log, start_new_session=True)
    log.close()
    try:
        _wait_listening(process, port, state / LOG_NAME, offset)
    except BaseException:
        processes.stop_child(process)
        raise
    return SshdProcess(process=process, port=port, host_key=prepared.host_key, state=state)


def start(state: Path, port: int, public_key_line: str, env: Mapping[str, str],
          say: Callable[[str], None], sshd_override: str = "", snippet: Path | None = None) -> SshdProcess:
    """Start this state folder's sshd on ``port`` (0: the earlier run's, else any), after stopping the
    earlier run's sshd; nothing is stopped until the port, the host key and the config have been checked."""
    return launch(prepare(state, port, public_key_line, env, say, sshd_override, snippet), say)


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path, offset: int) -> None:
    """Wait for sshd's own "Server listening" line (no probe connection, which sshd would count)."""
    ready = f"Server listening on 127.0.0.1 port {port}."
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        with open(log, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
        if ready in text:
            return
        if process.poll() is not None:
            tail = (text.strip().splitlines() or ["no output"])[-1]
            raise BootstrapError(f"sshd stopped at once: {tail}", f"see {log}")
        time.sleep(0.01)
    processes.stop_child(process)
    raise BootstrapError(f"sshd did not start listening on 127.0.0.1:{port} within {READY_TIMEOUT:.0f} s",
                         f"see {log}")
