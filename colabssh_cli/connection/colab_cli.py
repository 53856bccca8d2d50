"""The typed core of `colabssh connect --via colab-cli`: Google's own `colab ssh --proxy-mode` as the transport.

No cell and no tunnel: Google's `colab` CLI (google-colab-cli 0.7+, Linux/macOS) bridges SSH through Colab
itself, over a WebSocket authenticated with the user's Google login, to the sshd that Colab starts in runtimes
created with SSH. colabssh writes the same managed Host block as for a connection code, with:

* ``ProxyCommand "/abs/colab" ssh --proxy-mode -s SESSION -i "/abs/colabssh key" [--gpu X]``: ``-i`` makes colab
  send colabssh's ed25519 public key to the runtime (colab's default would be ``~/.ssh/id_ed25519``);
* ``HostName SESSION.colab-cli.invalid``: never resolved (the ProxyCommand ignores it), but part of
  OpenSSH's ``%C`` hash, so every alias of one runtime shares one ControlPath, and two runtimes never do;
* ``ControlMaster auto`` + ``ControlPersist``: Colab allows ONE SSH connection per runtime (HTTP 429 for a
  second), so VS Code, ssh, rsync and colabssh's commands all ride the first one;
* ``StrictHostKeyChecking accept-new`` in colabssh's own known_hosts: connect pins the key it sees at first
  contact (through Google's authenticated connection), ssh refuses any other key afterwards, and running connect
  again re-pins (a runtime made anew behind a session name has a new host key).

The first contact (connect's pre-flight, paramiko over colab's stdin/stdout) skips what colab writes before the SSH
banner, as OpenSSH does (the real CLI's update notice is several lines on stdout), waits while colab creates the
session's runtime (minutes), never ends colab in the middle of that (colab's store learns the runtime's name only at
its end), and when connect does not finish (an error, a time-out, Ctrl-C) it stops a runtime that colab created for
it (`colab stop -s NAME`) and says so; a session that existed before is never stopped.

colab's errors (no `colab`, HTTP 404/429/400/401/403/502, an old CLI, a missing key) are recognised in its stderr
(remote/advice.py), both in the first contact (colab_bridge.py) and in ssh's stderr (remote/runner.py
explain_ssh_failure), and each becomes one line with its fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Optional, TypeVar

from colab_bootstrap.conncode import fingerprint

from ..errors import ColabsshError
from ..paths import Paths
from ..remote import process
from ..remote.advice import CREATING, READY, colab_message
from ..remote.colab_log import drop_log, last_colab_output, log_path
from ..remote.runner import close_shared_connection, shared_connection_alive
from ..session import Session, Transport
from ..sshconfig.plan import Plan, pinned_key
from ..sshconfig.render import HostEntry, control_dir_for, entry_for
from .colab_bridge import Contact, first_contact
from .colab_cli_input import colab_path, hostname_for, proxy_argv, proxy_command, validate_gpu, validate_session_name
from .commit import confirm_with_openssh
from .flow import ConnectResult

STOP_TIMEOUT = 180.0  # `colab stop -s NAME`
BUSY_RETRY_DELAYS = (0.5, 1.0, 2.0)  # Colab may count a just-closed connection for a moment

T = TypeVar("T")
Report = Callable[[str], None]


# ---- a busy runtime ---------------------------------------------------------------------------------------


def is_busy(error: ColabsshError) -> bool:
    return "(HTTP 429" in error.message


def retry_when_busy(action: Callable[[], T], delays: Optional[tuple[float, ...]] = None) -> T:
    """ACTION, again after a short wait while Colab still counts a connection that was just closed (429)."""
    for delay in BUSY_RETRY_DELAYS if delays is None else delays:
        try:
            return action()
        except ColabsshError as exc:
            if not is_busy(exc):
                raise
            time.sleep(delay)  # a back-off for Colab's server, not a synchronisation
    return action()


def stop_runtime(colab: str, session: str, report: Report) -> bool:
    """`colab stop -s SESSION`, for the runtime colab created for a connect that did not finish; True when colab
    says it stopped it. Says what happened either way."""
    report(f"stopping the runtime colab created for colab session '{session}' (connect did not finish, and a "
           f"runtime uses compute units while it runs): {colab} stop -s {session}")
    why = ""
    try:
        done = process.run([colab, "stop", "-s", session], timeout=STOP_TIMEOUT, new_session=True)
    except process.TimedOut:
        why = f"it did not finish within {STOP_TIMEOUT:.0f} s"
    except OSError as exc:
        why = exc.strerror or str(exc)
    except KeyboardInterrupt:
        report(f"`colab stop -s {session}` was interrupted: run it yourself, the runtime may still run")
        raise
    else:
        if done.returncode == 0 and "Session terminated." in done.stdout:
            report(f"stopped the runtime of colab session '{session}'")
            return True
        why = colab_message(done.stderr) or colab_message(done.stdout) or f"exit {done.returncode}"
    report(f"colab could not stop the runtime of colab session '{session}' ({why}): it uses compute units until "
           f"`colab stop -s {session}` ends it (`colab sessions` lists the runtimes)")
    return False


# ---- connect ------------------------------------------------------------------------------------------------


def session_for(alias: str, name: str, gpu: str, colab: str) -> Session:
    """The runtime of colab session NAME, reached through COLAB (its absolute path)."""
    return Session(alias=alias, host=hostname_for(name), port=22, user="root", tunnel=Transport.COLAB_CLI,
                   content="/content", python="python3", gpu=gpu, extra={"session": name, "colab": colab})


class ColabCliConnector:
    """connect's steps for `--via colab-cli` (flow.Connector): the first contact through colab, one connection
    shared by everything, and a runtime colab created for a connect that did not finish stopped again."""

    def __init__(self, alias: str, session: Optional[str], gpu: Optional[str]) -> None:
        name = validate_session_name(session or alias)
        gpu = validate_gpu(gpu)
        self.colab = colab_path()
        self.session = session_for(alias, name, gpu, self.colab)
        self.name = name
        self.contact = Contact(name)
        self.old_pin: Optional[str] = None

    def host_entry(self, paths: Paths) -> HostEntry:
        proxy = proxy_command(self.colab, self.name, paths.key, self.session.gpu, log_path(paths, self.session.alias))
        return entry_for(self.session, paths, proxy_command=proxy, control_dir=control_dir_for(paths),
                         connect_timeout=None)  # colab may be creating the runtime: a timeout would kill it mid-way

    def pin(self, paths: Paths) -> Optional[str]:
        self.old_pin = pinned_key(paths, self.session.alias)
        return self.old_pin

    def check(self, paths: Paths, result: ConnectResult, check: bool, report: Report,
              plan: Optional[Plan] = None) -> Optional[str]:
        """The first contact (or the open shared connection); the pin is the key the runtime showed."""
        alias, name = self.session.alias, self.name
        pin: Optional[str] = None
        if check and not result.changed and shared_connection_alive(paths, alias):
            pin = self.old_pin  # the open connection is to the pinned runtime; a second one would be refused (429)
            result.through_shared_connection = True
            report(f"the shared connection of '{alias}' is open: checking through it")
        else:
            result.closed_old_connection = close_shared_connection(paths, alias)
            if result.closed_old_connection:
                report(f"closed the shared connection of '{alias}' (it went to the runtime pinned before)")
            if check:
                report(f"first contact through `colab ssh --proxy-mode -s {name}` (a session that does not exist yet "
                       "is created now: a billable runtime, which can take minutes) ...")
                argv = proxy_argv(self.colab, name, paths.key, self.session.gpu)
                pin = retry_when_busy(lambda: first_contact(argv, self.session.host, paths.key, name, report,
                                                            contact=self.contact))
        if pin is not None:
            result.fingerprint = fingerprint(pin)
            if self.old_pin is not None and self.old_pin != pin:
                result.replaced_fingerprint = fingerprint(self.old_pin)
        return pin

    def login(self, paths: Paths, result: ConnectResult, report: Report) -> None:
        alias = self.session.alias
        report(f"logging in with OpenSSH: ssh {alias} true (it keeps the shared connection open)")
        if not result.through_shared_connection:
            drop_log(paths, alias)  # no colab writes to it now; what it holds next is this login's
        try:
            retry_when_busy(lambda: confirm_with_openssh(paths, alias))
        except BaseException:
            logged = last_colab_output(paths, alias)  # this login's colab: did it make a runtime?
            if not result.through_shared_connection and CREATING.format(session=self.name) in logged \
                    and READY in logged:
                self.contact.created = True
            raise

    def before_undo(self, paths: Paths) -> None:
        close_shared_connection(paths, self.session.alias)

    def failed(self, report: Report) -> None:
        """A runtime that colab created for this connect is not left running (Ctrl-C too)."""
        if self.contact.created:
            stop_runtime(self.colab, self.name, report)


# ---- what this transport cannot do -------------------------------------------------------------------------------
