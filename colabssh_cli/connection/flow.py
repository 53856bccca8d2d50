"""The typed core of `colabssh connect`: one flow, from a runtime's description to a working ssh alias and an editor.

What differs per transport sits behind ``Connector`` (connection/tunnel.py for a connection code or colab-ssh's
options: ngrok, cloudflared, local; connection/colab_cli.py for Google's `colab ssh --proxy-mode`). The steps, in
this order (each one before anything the next one writes):

1. validate the alias and the editor, then let the transport validate its input into a ``Session``
   (a bad code or option is BAD_INPUT);
2. finish what a killed colabssh run left (sshconfig/repair.py);
3. plan the change of the files (the Host block in colabssh's own config, the Include between markers at the
   top of ~/.ssh/config, the pinned host key, sessions.json): an alias the user already uses, or malformed
   markers, refuse here; ``dry_run`` stops with the diff;
4. make sure colabssh's client key exists, ask ``ssh -G`` what it makes of the planned files (refused here), and
   let the transport check the runtime before anything is written (a code's: ONE OpenSSH login through copies of
   the planned files, which stays as the alias's shared connection; colab's first contact) and close a shared
   connection to an old runtime;
5. apply the plan under the lock, check what OpenSSH makes of the written files and log in with OpenSSH itself
   (``ssh ALIAS true``: through the shared connection the check opened); if either fails the files go back to the
   bytes they had (connection/commit.py);
6. open the editor.

A re-run with the same input writes nothing. Should connect not finish, the transport may clean up what it
started (colab-cli: a runtime colab created for this connect is stopped).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Protocol

from ..editor import EDITORS, EditorOutcome, open_editor
from ..errors import BAD_INPUT, ColabsshError
from ..paths import Paths
from ..remote.keys import ensure_client_key
from ..session import DEFAULT_ALIAS, Login, Session, utc_now, validate_alias
from ..sshconfig.apply import locked
from ..sshconfig.plan import Plan, plan_connect
from ..sshconfig.render import HostEntry
from .commit import apply_and_verify, planned, planned_change

Report = Callable[[str], None]


@dataclass(frozen=True)
class ConnectOptions:
    """What every transport's connect takes; the transport's own input (a code, colab-ssh's address, a colab
    session name) goes to its Connector."""

    alias: str = DEFAULT_ALIAS
    open_editor: bool = True
    editor: str = "code"
    check: bool = True
    dry_run: bool = False


@dataclass
class ConnectResult:
    session: Session  # the runtime, as recorded in sessions.json
    changed: bool = False
    written: list[Path] = field(default_factory=list)
    diff: str = ""
    dry_run: bool = False
    login_checked: bool = False
    fingerprint: str = ""  # colab-cli: the key pinned now ('' with --no-check: ssh pins it at its first contact)
    replaced_fingerprint: str = ""  # colab-cli: the pin it replaced (another runtime behind the session now)
    presented_fingerprint: str = ""  # unpinned sessions: the key the runtime showed during the check
    through_shared_connection: bool = False  # checked through the alias's open shared connection
    closed_old_connection: bool = False
    editor: Optional[EditorOutcome] = None

    @property
    def alias(self) -> str:
        return self.session.alias


class Connector(Protocol):
    """What one transport adds to the flow: its Host block, its pin, its pre-flight check and its login check."""

    session: Session  # the runtime, validated; connected_at is set when it is recorded

    def host_entry(self, paths: Paths) -> HostEntry:
        """The Host block: the session's values and the transport's ProxyCommand, sharing and timeouts."""

    def pin(self, paths: Paths) -> Optional[str]:
        """The host key the plan pins before any check (None: no pin; ssh pins it at first contact)."""

    def check(self, paths: Paths, result: ConnectResult, check: bool, report: Report, plan: Plan) -> Optional[str]:
        """Before any file is written: check the runtime (when CHECK), close a shared connection that would reach
        an old runtime, note what was seen in RESULT; return the host key to pin. PLAN: the change that follows
        (previewed with ``ssh -G`` already), for a check through the planned files."""

    def login(self, paths: Paths, result: ConnectResult, report: Report) -> None:
        """Log in with OpenSSH through the written files (a ColabsshError when that fails)."""

    def before_undo(self, paths: Paths) -> None:
        """Before the files go back after a failed check."""

    def failed(self, report: Report) -> None:
        """connect did not finish (an error, Ctrl-C): undo what the transport started."""


def repair_first(paths: Paths, report: Report) -> None:
    """Finish what a killed colabssh run left and bring the stores into agreement (repair.py), saying what."""
    from ..sshconfig.repair import repair

    for fixed in repair(paths):
        report(f"repaired: {fixed.line}")


def connect(options: ConnectOptions, connector_for: Callable[[str], Connector], paths: Optional[Paths] = None,
            report: Report = lambda line: None) -> ConnectResult:
    """Connect the alias to the runtime that CONNECTOR_FOR(alias) describes (it validates its own input)."""
    paths = paths or Paths.from_env()
    alias = validate_alias(options.alias)
    if options.editor not in EDITORS:
        raise ColabsshError(f"unknown editor {options.editor!r}", f"use one of: {', '.join(EDITORS)}", BAD_INPUT)
    connector = connector_for(alias)
    session = connector.session
    # under colabssh's lock from the repair to the last check (and the undo): two connects at once in one home
    # take turns, so neither sees the other's half-made change (a pin not written yet, a folder another's undo
    # removed) and takes it for a stranger's host key
    with nullcontext() if options.dry_run else locked(paths):
        if not options.dry_run:
            repair_first(paths, report)
        entry = connector.host_entry(paths)
        pin = connector.pin(paths)
        plan = planned(lambda: plan_connect(paths, entry, pin))  # collisions, malformed markers: refused here
        result = ConnectResult(session=session, changed=plan.changed(), dry_run=options.dry_run)
        if options.dry_run:
            result.diff = plan.diff() if plan.changed() else ""
            return result

        ensure_client_key(paths)
        logs_in = options.check and session.auth == Login.KEY  # a password session's ssh asks for the password
        recorded = replace(session, connected_at=utc_now())
        try:
            full = planned_change(paths, plan, entry, recorded)  # `ssh -G` on the planned files, before any login
            checked_pin = connector.check(paths, result, options.check, report, full)
            result.written = apply_and_verify(paths, entry, checked_pin,
                                              (lambda: connector.login(paths, result, report)) if logs_in else None,
                                              before_undo=lambda: connector.before_undo(paths), session=recorded,
                                              first_plan=full if checked_pin == pin else None)
        except BaseException:  # Ctrl-C too
            connector.failed(report)
            raise
    result.changed = bool(result.written)
    result.login_checked = logs_in
    if options.open_editor:
        result.editor = open_editor(options.editor, alias, session.content, report)
    return result
