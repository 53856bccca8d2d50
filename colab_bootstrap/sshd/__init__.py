"""colabssh's own key-only sshd: prepared while the earlier run's sshd still serves, then launched in its place.

It has its own config, host key and state folder, and listens on 127.0.0.1 only: the tunnel connects
locally. It runs in the foreground (``-D``) as a child of the cell's process, with a PidFile in the
state folder so that a re-run stops a leftover first (and /proc for one whose pid file was lost): with
the connections it serves, waited for, so the new sshd takes the same port. The port is claimed before
anything is stopped: a port another program holds is an error that names it, and the earlier run serves on.

- ``config``: the sshd_config it runs with, and its check (``sshd -t``)
- ``access``: the state folder, the host key, the authorised key and the login user
- ``identity``: the host key kept on Drive (the same for every runtime of a key) and the code saved there
- ``ports``: the port, claimed before anything is stopped
- ``listeners``: this machine's colabssh sshds, found through /proc
- ``program``: which sshd to run (installed with apt-get on a root runtime without one)
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import processes
from ..errors import BootstrapError
from ..files import write_private
from .access import login_name, prepare_state, write_authorized_key
from .config import CONFIG_NAME, PID_NAME, check_config, render_config, sshd_version
from .identity import host_key as choose_host_key
from .identity import kept_folder, save_code
from .listeners import listener_config, listeners_of, snippet_in_use
from .ports import claim_port, wait_until_bindable
from .program import find_sshd

__all__ = ["LOG_NAME", "Prepared", "SshdProcess", "find_sshd", "kept_folder", "launch", "login_name", "prepare",
           "prepare_state", "save_code", "snippet_in_use", "start", "stop_leftover", "write_authorized_key"]

LOG_NAME = "sshd.log"
READY_TIMEOUT = 15.0


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


@dataclass
class Prepared:
    """Everything a new sshd needs, checked while the earlier run's sshd still serves."""

    sshd: str
    state: Path
    port: int
    host_key: str  # "ssh-ed25519 BASE64"
    config_text: str


def prepare(state: Path, port: int, public_key_line: str, env: Mapping[str, str],
            say: Callable[[str], None], sshd_override: str = "", snippet: Path | None = None,
            kept: Path | None = None, fresh_host_key: bool = False) -> Prepared:
    """Find sshd, claim the port, make sure of the host key and check the config with ``sshd -t``, all before
    the earlier run's sshd is touched: whatever fails here leaves that sshd serving. KEPT: the Drive folder
    whose host key this runtime presents (``identity``); FRESH_HOST_KEY: the state folder's own key instead."""
    sshd = find_sshd(say, sshd_override)
    prepare_state(state)
    port = claim_port(state, port)
    host_key = choose_host_key(state, kept, fresh_host_key, say)
    write_authorized_key(state, public_key_line)
    text = render_config(state, port, login_name(), env, sshd_version(sshd), snippet)
    check_config(sshd, state, text)
    return Prepared(sshd, state, port, host_key, text)


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
