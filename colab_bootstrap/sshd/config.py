"""The sshd_config of colabssh's own sshd (key only, loopback only, one authorised key), checked with ``sshd -t``.

Never ``/etc/ssh/sshd_config``: sshd keeps the first value it reads, so appending there is unreliable.

``StrictModes no`` is safe here: the only file it guards is our own ``authorized_keys``, which
``access`` writes (0600) in a state folder it creates and checks to be owned by us with mode 0700;
StrictModes would otherwise refuse any state folder below a world-writable one such as /tmp.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

from ..errors import BootstrapError
from ..files import write_private
from ..session_env import setenv_lines

CONFIG_NAME = "sshd_config"
PID_NAME = "sshd.pid"
HOST_KEY_NAME = "ssh_host_ed25519_key"
AUTHORIZED_KEYS_NAME = "authorized_keys"
HEADER = "# colabssh's own sshd: key only, loopback only, one authorised key"
SNIPPET_COMMENT = "# login-shell snippet: "  # names the profile snippet this run's login shells rely on


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
