"""A key-only sshd of colabssh's own: its own config, host key and state folder.

Never touches ``/etc/ssh/sshd_config`` (sshd keeps the first value it reads, so
appending there is unreliable). Listens on 127.0.0.1 only: the tunnel connects
locally. Runs in the foreground (``-D``) as a child of the cell's process, with a
PidFile in the state folder so that a re-run stops a leftover first.

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


@dataclass
class SshdProcess:
    process: subprocess.Popen[bytes]
    port: int
    host_key: str  # "ssh-ed25519 BASE64"
    state: Path

    def stop(self) -> None:
        processes.terminate_with_sessions(self.process.pid, lambda: processes.stop_child(self.process))
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
                  penalties_option: bool) -> str:
    lines = [
        "# colabssh's own sshd: key only, loopback only, one authorised key",
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
        "AllowTcpForwarding yes",
        "AllowAgentForwarding no",
        "X11Forwarding no",
        "PrintMotd no",
        "ClientAliveInterval 30",
        "ClientAliveCountMax 4",
        "MaxStartups 30:30:100",
        "LogLevel VERBOSE",
        "Subsystem sftp internal-sftp",
    ]
    if penalties_option:
        lines.append("PerSourcePenalties no  # every tunnel client arrives from 127.0.0.1")
    lines += setenv_lines(env, state / "session-env.sh")
    return "\n".join(lines) + "\n"


def supports_per_source_penalties(sshd: str) -> bool:
    """OpenSSH 9.8+ has PerSourcePenalties; the version is in `sshd -V` (or its usage text)."""
    try:
        out = subprocess.run([sshd, "-V"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", out.stdout + out.stderr)
    if match is None:
        return False
    return (int(match.group(1)), int(match.group(2))) >= (9, 8)


def stop_leftover(state: Path, say: Callable[[str], None], whose: str = "of an earlier run") -> None:
    """Stop an sshd that an earlier run of the cell left behind (and only that one)."""
    pidfile = state / PID_NAME
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    if processes.runs_with(pid, str(state / CONFIG_NAME)):
        say(f"stopping the sshd {whose} (pid {pid})")
        processes.terminate_with_sessions(pid)
    pidfile.unlink(missing_ok=True)


def pick_port(requested: int) -> int:
    """The requested port if free on 127.0.0.1 (0: any free port); else a clear error."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", requested))
        except OSError:
            raise BootstrapError(f"port {requested} on 127.0.0.1 is already in use",
                                 "set COLABSSH_PORT to a free port, or 0 to pick one") from None
        return int(sock.getsockname()[1])


def start(state: Path, port: int, public_key_line: str, env: Mapping[str, str],
          say: Callable[[str], None], sshd_override: str = "") -> SshdProcess:
    sshd = find_sshd(say, sshd_override)
    prepare_state(state)
    stop_leftover(state, say)
    port = pick_port(port)
    host_key = ensure_host_key(state)
    write_authorized_key(state, public_key_line)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege separation
    config = state / CONFIG_NAME
    write_private(config, render_config(state, port, login_name(), env, supports_per_source_penalties(sshd)))
    check = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        detail = (check.stderr.strip().splitlines() or ["no detail"])[-1]
        raise BootstrapError(f"sshd refused colabssh's config: {detail}",
                             f"see {config}; is OpenSSH older than 8.7 (no SetEnv)?")
    log = open(state / LOG_NAME, "ab")
    offset = log.seek(0, os.SEEK_END)
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                               stdout=log, stderr=log, start_new_session=True)
    log.close()
    try:
        _wait_listening(process, port, state / LOG_NAME, offset)
    except BaseException:
        processes.stop_child(process)
        raise
    return SshdProcess(process=process, port=port, host_key=host_key, state=state)


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
