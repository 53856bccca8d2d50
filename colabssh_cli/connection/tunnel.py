"""The tunnel transports (ngrok, cloudflared, local): a runtime reached at the address a connection code (or
colab-ssh) gave, with `cloudflared access ssh` as the ProxyCommand for cloudflared.

A code's host key is pinned before anything is written, and the pre-flight login (remote/preflight.py) uses it
as the only key accepted; a colab-ssh runtime has no pinned key: ssh asks once (StrictHostKeyChecking ask), and
the check shows the key the runtime presents.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from colab_bootstrap.conncode import fingerprint

from ..errors import MISSING_TOOL, ColabsshError
from ..paths import Paths
from ..remote.preflight import check_login, presented_host_key
from ..remote.runner import close_shared_connection, shares_connections
from ..session import Session, Transport, load_sessions
from ..sshconfig.plan import pinned_key
from ..sshconfig.render import HostEntry, control_dir_for, entry_for, proxy_path_is_safe
from .commit import confirm_with_openssh
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


class TunnelConnector:
    """connect's steps for a runtime behind ngrok, cloudflared or a plain address (flow.Connector)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.cloudflared = cloudflared_path() if session.tunnel == Transport.CLOUDFLARED else None
        self._pin: Optional[str] = None

    @classmethod
    def from_input(cls, alias: str, given: TunnelInput) -> TunnelConnector:
        return cls(session_from_input(alias, given))

    def host_entry(self, paths: Paths) -> HostEntry:
        return entry_for(self.session, paths,
                         proxy_command=proxy_command(self.cloudflared) if self.cloudflared else None,
                         control_dir=control_dir_for(paths) if shares_connections() else None)

    def pin(self, paths: Paths) -> Optional[str]:
        self._pin = self.session.hostkey or kept_first_contact_pin(paths, self.session)
        return self._pin

    def check(self, paths: Paths, result: ConnectResult, check: bool, report: Report) -> Optional[str]:
        session = self.session
        proxy = proxy_argv(self.cloudflared, session.host) if self.cloudflared else None
        if check:
            report(f"checking the login to {session.address} ...")
            if session.pinned:
                check_login(session, paths.key, proxy)
            else:
                result.presented_fingerprint = fingerprint(presented_host_key(session, proxy))
        if result.changed:
            result.closed_old_connection = close_shared_connection(paths, session.alias)
            if result.closed_old_connection:
                report(f"closed the shared connection of '{session.alias}' to its earlier runtime")
        return self._pin

    def login(self, paths: Paths, result: ConnectResult, report: Report) -> None:
        report(f"logging in with OpenSSH: ssh {self.session.alias} true")
        confirm_with_openssh(paths, self.session.alias)

    def before_undo(self, paths: Paths) -> None:
        pass

    def failed(self, report: Report) -> None:
        pass
