"""The tunnel transports (ngrok, cloudflared, local): a runtime reached at the address a connection code (or
colab-ssh) gave, with `cloudflared access ssh` as the ProxyCommand for cloudflared.

A code's host key is pinned before anything is written, and the pre-flight login uses it as the only key accepted:
ONE OpenSSH login through copies of the planned files, which stays open as the alias's shared connection for the
editor and later commands (paramiko, remote/preflight.py, is asked only when it fails, to say why); a
colab-ssh runtime has no pinned key: ssh asks once (StrictHostKeyChecking ask), and the check shows the key the
runtime presents.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from colab_bootstrap.conncode import fingerprint

from ..errors import MISSING_TOOL, ColabsshError
from ..paths import Paths
from ..remote import process
from ..remote.preflight import check_login, no_answer, presented_host_key, why_login_failed
from ..remote.runner import (
    CONTROL_TIMEOUT,
    close_shared_connection,
    control_command,
    shared_connection_alive,
    shares_connections,
    ssh_binary,
)
from ..session import Login, Session, Transport, load_sessions
from ..sshconfig import text
from ..sshconfig.effective import planned_copies
from ..sshconfig.plan import Plan, pinned_key
from ..sshconfig.render import HostEntry, control_dir_for, ensure_control_dir, entry_for, proxy_path_is_safe
from .commit import confirm_with_openssh, openssh_failure, openssh_login
from .flow import ConnectResult
from .tunnel_input import TunnelInput, session_from_input

Report = Callable[[str], None]


def cloudflared_path() -> str:
    found = shutil.which("cloudflared")
    if not found:
        raise ColabsshError("this is a cloudflared session, and `cloudflared` is not installed on this machine",
                            "install it (https://developers.cloudflare.com/cloudflare-one/connections/"
                            "connect-networks/downloads/), then run the same connect again", MISSING_TOOL)
    path = str(Path(found).absolute())
    if not proxy_path_is_safe(path):
        raise ColabsshError(f"cloudflared's path {path!r} has characters a ProxyCommand cannot carry safely",
                            "install cloudflared in a folder with a plain name (no $ ` \" % or control "
                            "characters)", MISSING_TOOL)
    return path


def proxy_command(cloudflared: str) -> str:
    """The ssh_config ProxyCommand (ssh runs it with the shell; %h is the HostName)."""
    return f'"{cloudflared}" access ssh --hostname %h'


def uses_relay(session: Session) -> bool:
    """Whether ssh reaches SESSION through the relay: it has a Drive folder, or it is a pinned ngrok runtime and
    NGROK_API_KEY is set (the ngrok API finds a recycled runtime's address)."""
    from ..comeback import ngrok_api_key

    return bool(session.drive_folder) or (session.pinned and session.tunnel == Transport.NGROK
                                          and bool(ngrok_api_key()))


def relay_command(session: Session) -> str:
    """The ProxyCommand of a session with a Drive folder: colabssh's relay finds the runtime's current address at
    each connection (colabssh_cli/comeback/relay.py); the Host block's HostName and Port are its last address."""
    python = str(Path(sys.executable).absolute())
    if not proxy_path_is_safe(python):
        raise ColabsshError(f"Python's path {python!r} has characters a ProxyCommand cannot carry safely",
                            "install colabssh with a Python in a folder with a plain name, or connect without "
                            "--drive-folder", MISSING_TOOL)
    return f'"{python}" -m colabssh_cli.comeback.relay {session.alias} %h %p {session.tunnel}'


def proxy_argv(cloudflared: str, host: str) -> list[str]:
    """The same command as an argv, for paramiko's ProxyCommand in the pre-flight check."""
    return [cloudflared, "access", "ssh", "--hostname", host]


def kept_first_contact_pin(paths: Paths, session: Session) -> Optional[str]:
    """For an unpinned session re-connected to the same address: the key ssh pinned on first contact.

    ssh (StrictHostKeyChecking ask) writes the key the user accepted into colabssh's known_hosts under
    the HostKeyAlias; connecting again to the same host and port keeps it (a re-run changes no file),
    while another address is another machine, whose key ssh asks about again.
    """
    old = load_sessions(paths).get(session.alias)
    if old is None or old.hostkey or (old.host, old.port, old.tunnel, old.user) != (
            session.host, session.port, session.tunnel, session.user):
        return None
    return pinned_key(paths, session.alias)


def _sockets(folders: tuple[Path, ...]) -> set[Path]:
    """The connection sharing sockets in FOLDERS now."""
    found: set[Path] = set()
    for folder in folders:
        try:
            found |= set(folder.iterdir())
        except OSError:
            pass
    return found


class TunnelConnector:
    """connect's steps for a runtime behind ngrok, cloudflared or a plain address (flow.Connector)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.cloudflared = cloudflared_path() if session.tunnel == Transport.CLOUDFLARED else None
        self._pin: Optional[str] = None
        self._opened: Optional[Plan] = None  # the plan whose files the check's shared connection was opened through
        self._paths: Optional[Paths] = None
        self._opened_master = False  # that login made the socket: it is the alias's shared connection
        self._checked = False  # logged in through the very files connect leaves: no login after writing

    @classmethod
    def from_input(cls, alias: str, given: TunnelInput) -> TunnelConnector:
        return cls(session_from_input(alias, given))

    def host_entry(self, paths: Paths) -> HostEntry:
        relayed = uses_relay(self.session)
        if relayed:
            proxy: Optional[str] = relay_command(self.session)
        else:
            proxy = proxy_command(self.cloudflared) if self.cloudflared else None
        return entry_for(self.session, paths, proxy_command=proxy,
                         control_dir=control_dir_for(paths) if shares_connections() else None,
                         fd_passing=relayed and os.name != "nt")  # the relay passes its socket; cloudflared not

    def pin(self, paths: Paths) -> Optional[str]:
        self._pin = self.session.hostkey or kept_first_contact_pin(paths, self.session)
        return self._pin

    def check(self, paths: Paths, result: ConnectResult, check: bool, report: Report, plan: Plan) -> Optional[str]:
        session = self.session
        proxy = proxy_argv(self.cloudflared, session.host) if self.cloudflared else None
        old_connection = None  # unknown: closed as before when the plan changes
        if check:
            report(f"checking the login to {session.address} ...")
            if session.pinned and session.auth == Login.KEY:
                if result.changed:  # the alias's connection to an earlier runtime needs a Host block naming it
                    old_own = plan.files[paths.config][0]
                    old_connection = old_own is not None and text.host_block(text.split_lines(old_own),
                                                                             session.alias) is not None \
                        and shared_connection_alive(paths, session.alias)
                    self._log_in_before_writing(paths, plan, proxy)
                elif plan.changed():  # only sessions.json changes: the ssh files are already so, log in through them
                    self._log_in_through_written_files(paths)
                    self._checked = True
                # else nothing is written: the login after applying (nothing) is the check
            elif session.pinned:
                check_login(session, paths.key, proxy)
            else:
                result.presented_fingerprint = fingerprint(presented_host_key(session, proxy))
        if result.changed and old_connection is not False:
            result.closed_old_connection = close_shared_connection(paths, session.alias)
            if result.closed_old_connection:
                report(f"closed the shared connection of '{session.alias}' to its earlier runtime")
        return self._pin

    def _log_in_before_writing(self, paths: Paths, plan: Plan, proxy: Optional[list[str]]) -> None:
        """ONE OpenSSH login through copies of the planned files (the pin in a copy of the planned known_hosts), as
        the alias's new shared connection (ControlMaster yes: never a ride on a master to an earlier runtime; when
        one holds the socket, this login is a plain one). Its failures say what the pre-flight always said."""
        alias = self.session.alias
        self._paths = paths
        with planned_copies(paths, plan) as copies:
            assert copies is not None  # a connect's plan always leaves both configs
            for folder in plan.dirs:
                ensure_control_dir(folder)
            known = copies.known_hosts.as_posix().replace("%", "%%")
            sockets = _sockets(plan.dirs)
            try:
                done = openssh_login(paths, alias, config=copies.user,
                                     options=["-o", f'UserKnownHostsFile="{known}"', "-o", "ControlMaster=yes"])
            except process.TimedOut:
                raise no_answer(self.session) from None
            stderr = copies.real_names(done.stderr)
        if done.returncode != 0:
            raise self._why(paths, done.returncode, stderr, proxy, "colabssh changed nothing")
        self._opened = plan
        self._opened_master = bool(_sockets(plan.dirs) - sockets)  # else another master held the socket

    def _why(self, paths: Paths, returncode: int, stderr: str, proxy: Optional[list[str]],
             note: str = "") -> ColabsshError:
        """OpenSSH's failed login, explained as the pre-flight explains it (paramiko asked only now)."""
        if returncode == 255:
            why = why_login_failed(self.session, paths.key, proxy, stderr)
            if why is not None:
                return why
        return openssh_failure(self.session.alias, returncode, stderr, note)

    def login(self, paths: Paths, result: ConnectResult, report: Report) -> None:
        alias = self.session.alias
        if self._opened_master and control_command(paths, alias, "check").returncode == 0:
            return  # the written files reach the login's shared connection: connect's summary says it works
        if self._checked:
            return
        report(f"logging in with OpenSSH: ssh {alias} true")
        if self._opened is not None or not self.session.pinned:
            confirm_with_openssh(paths, alias)
            return
        self._log_in_through_written_files(paths)

    def _log_in_through_written_files(self, paths: Paths) -> None:
        """The ssh files were already so: this login (or a ride on the alias's open shared connection, which was
        logged in with the same pin) is the check; its failures say what the pre-flight always said."""
        try:
            done = openssh_login(paths, self.session.alias)
        except process.TimedOut:
            raise no_answer(self.session) from None
        if done.returncode != 0:
            proxy = proxy_argv(self.cloudflared, self.session.host) if self.cloudflared else None
            raise self._why(paths, done.returncode, done.stderr, proxy)

    def before_undo(self, paths: Paths) -> None:
        pass

    def failed(self, report: Report) -> None:
        """The shared connection the check opened goes when connect does not finish (the files do not name it)."""
        if self._opened is not None and self._opened_master and self._paths is not None:
            with planned_copies(self._paths, self._opened) as copies:
                if copies is not None:
                    try:
                        process.run([ssh_binary(), "-F", str(copies.user), "-O", "exit", self.session.alias],
                                    timeout=CONTROL_TIMEOUT)
                    except (OSError, process.TimedOut):
                        pass
