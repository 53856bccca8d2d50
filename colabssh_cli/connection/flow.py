"""The typed core of `colabssh connect`: from a connection code to a working ssh alias and an editor.

The steps, in this order (each one before anything the next one writes):

1. decode and validate the whole code (or the colab-ssh options); a bad one is BAD_INPUT;
2. make sure colabssh's client key exists, then log in in-process with paramiko exactly as the
   written config will (preflight.py): a dead tunnel, a refused key or another host key stop here;
3-5. plan the change of the three files (sshconfig.py: the Host block in colabssh's own config,
   the Include between markers at the top of ~/.ssh/config, the pinned host key) and apply it
   under the lock; an alias the user already uses, or malformed markers, refuse before that;
6. check what OpenSSH makes of it (``ssh -G``) and log in with OpenSSH itself (``ssh ALIAS true``);
   if either fails the files go back to the bytes they had;
7. open the editor (editor.py).

A re-run with the same code writes nothing; ``dry_run`` only shows the diff. A new code for an
alias first closes the shared connection to the old runtime (``ssh -O exit``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from colab_bootstrap import conncode

from ..editor import EDITORS, EditorOutcome, open_editor
from ..errors import BAD_INPUT, MISSING_TOOL, UNREACHABLE, ColabsshError
from ..paths import Paths
from ..remote.advice import drop_log, log_path
from ..remote.keys import ensure_client_key
from ..remote.preflight import Endpoint, check_login, presented_host_key
from ..remote.runner import (
    close_shared_connection,
    explain_ssh_failure,
    shares_connections,
    ssh_base,
    ssh_binary,
    ssh_config_file,
)
from ..session import (
    DEFAULT_ALIAS,
    Session,
    load_sessions,
    planned_sessions,
    utc_now,
    validate_alias,
    with_session,
    without_session,
)
from ..sshconfig.apply import apply, apply_with_retry
from ..sshconfig.files import BACKUP_MARK, TEMP_MARK, make_private_dir, remove_file
from ..sshconfig.files import resolve_target as file_behind
from ..sshconfig.plan import Plan, host_key_alias, include_line, pinned_key, plan_connect, plan_forget
from ..sshconfig.render import BEGIN_MARKER, END_MARKER, HostEntry, control_dir_for, proxy_path_is_safe
from ..sshconfig.text import content as line_content
from ..sshconfig.text import find_span, host_block, split_lines

Report = Callable[[str], None]
CHECK_TIMEOUT = 60.0
_STRICT = {"yes": "true", "no": "false", "ask": "ask", "accept-new": "accept-new"}


@dataclass(frozen=True)
class Target:
    """What to connect to: decoded from a connection code, or given as colab-ssh options."""

    host: str
    port: int
    user: str
    tunnel: str  # ngrok | cloudflared | local | colab-cli
    hostkey: str = ""  # "ssh-ed25519 BASE64" from a code; "" for unpinned (colab-ssh) sessions
    content: str = "/content"
    drive: str = ""
    python: str = "python3"
    gpu: str = ""
    code: str = ""
    auth: str = "key"  # key | password

    @property
    def pinned(self) -> bool:
        return bool(self.hostkey)

    @property
    def fingerprint(self) -> str:
        return conncode.fingerprint(self.hostkey) if self.hostkey else ""

    @property
    def where(self) -> str:
        return self.host if self.tunnel == "cloudflared" else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ConnectOptions:
    code: Optional[str] = None
    alias: str = DEFAULT_ALIAS
    open_editor: bool = True
    editor: str = "code"
    check: bool = True
    dry_run: bool = False
    host: Optional[str] = None  # colab-ssh over ngrok: --host/--port
    port: Optional[str] = None
    cloudflared_host: Optional[str] = None  # colab-ssh over cloudflared
    password: bool = False
    user: str = "root"


@dataclass
class ConnectResult:
    alias: str
    target: Target
    changed: bool = False
    written: list[Path] = field(default_factory=list)
    diff: str = ""
    dry_run: bool = False
    login_checked: bool = False
    presented_fingerprint: str = ""  # unpinned sessions: the key the runtime showed during the check
    closed_old_connection: bool = False
    editor: Optional[EditorOutcome] = None


# ---- step 1: the code or the colab-ssh options -------------------------------------------------------------


def target_from_code(text: str) -> Target:
    try:
        info = conncode.decode(text)
    except conncode.CodeError as exc:
        raise ColabsshError(f"bad connection code: {exc}",
                            "copy the whole `colabssh connect ...` line that the cell printed last",
                            BAD_INPUT) from None
    return Target(host=info.host, port=info.port, user=info.user, tunnel=info.tunnel, hostkey=info.hostkey,
                  content=info.content, drive=info.drive, python=info.python, gpu=info.gpu,
                  code=text.strip(" \t\r\n"))


def _bad(message: str, hint: str) -> ColabsshError:
    return ColabsshError(message, hint, BAD_INPUT)


def target_from_colab_ssh(options: ConnectOptions) -> Target:
    """A runtime started by colab-ssh (`launch_ssh` over ngrok, `launch_ssh_cloudflared`): password login."""
    if not options.password:
        raise _bad("--host and --cloudflared-host are for runtimes started by colab-ssh, which log in with a "
                   "password", "add --password (ssh or VS Code asks for it; colabssh never stores it)")
    if options.user != "root":
        try:
            conncode.validate_user(options.user or "")
        except conncode.CodeError:
            raise _bad(f"the user {options.user!r} is not a valid user name", "colab-ssh logs in as root") from None
    try:
        if options.cloudflared_host is not None:
            if options.host is not None or options.port is not None:
                raise _bad("give either --cloudflared-host, or --host and --port", "not both")
            host = conncode.validate_host(options.cloudflared_host)
            return Target(host=host, port=22, user=options.user, tunnel="cloudflared", auth="password")
        if options.host is None or options.port is None:
            raise _bad("--host needs --port (the two values colab-ssh printed)",
                       "colabssh connect --host X.tcp.ngrok.io --port NNNNN --password")
        host = conncode.validate_host(options.host)
        port = conncode.validate_port(options.port)
    except conncode.CodeError as exc:
        raise _bad(str(exc), "give the HostName and Port that colab-ssh printed") from None
    return Target(host=host, port=port, user=options.user, tunnel="ngrok", auth="password")


def resolve_target(options: ConnectOptions) -> Target:
    colab_ssh = options.host is not None or options.port is not None or options.cloudflared_host is not None
    if options.code is not None and colab_ssh:
        raise _bad("give either a connection code or --host/--port/--cloudflared-host, not both",
                   "the code already says where the runtime is")
    if colab_ssh:
        return target_from_colab_ssh(options)
    if options.code is None:
        raise _bad("no connection code given", "run the cell in Colab and copy its `colabssh connect CODE` line")
    if options.password:
        raise _bad("--password is only for colab-ssh runtimes (--host/--port or --cloudflared-host)",
                   "runtimes started by the colabssh cell log in with colabssh's key")
    return target_from_code(options.code)


# ---- cloudflared: the ProxyCommand --------------------------------------------------------------------------


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


# ---- step 3-5: the Host entry and the files -----------------------------------------------------------------


def host_entry(paths: Paths, alias: str, target: Target, cloudflared: Optional[str]) -> HostEntry:
    return HostEntry(
        alias=alias, hostname=target.host, port=target.port, user=target.user,
        identity_file=paths.key, known_hosts=paths.known_hosts, host_key_alias=host_key_alias(alias),
        strict_host_key_checking="yes" if target.pinned else "ask",
        proxy_command=proxy_command(cloudflared) if cloudflared else None,
        control_dir=control_dir_for(paths) if shares_connections() else None,
        password_auth=target.auth == "password")


def kept_first_contact_pin(paths: Paths, alias: str, target: Target) -> Optional[str]:
    """For an unpinned session re-connected to the same address: the key ssh pinned on first contact.

    ssh (StrictHostKeyChecking ask) writes the key the user accepted into colabssh's known_hosts under
    the HostKeyAlias; connecting again to the same host and port keeps it (a re-run changes no file),
    while another address is another machine, whose key ssh asks about again.
    """
    old = load_sessions(paths).get(alias)
    if old is None or old.hostkey or (old.host, old.port, old.tunnel, old.user) != (
            target.host, target.port, target.tunnel, target.user):
        return None
    return pinned_key(paths, alias)


def planned(make: Callable[[], Plan]) -> Plan:
    """A plan, with the renderer's refusal of a value (ValueError) turned into one clear line."""
    try:
        return make()
    except ValueError as exc:
        raise ColabsshError(f"colabssh will not write this into an ssh config: {exc}",
                            "use plain host names, user names and folder names", BAD_INPUT) from None


def undo(paths: Paths, plan: Plan, written: list[Path]) -> None:
    """Put the files back to the bytes they had before `plan` was applied, and drop the backup of the user's
    config that applying it made (WRITTEN: what apply returned; the backup holds the bytes put back)."""
    reverse = plan.reversed()
    if reverse.changed():
        apply(paths, reverse)
    for path in written:
        if BACKUP_MARK in path.name and path.parent == file_behind(paths.user_config).parent:
            remove_file(path)


# ---- step 6: what OpenSSH makes of it -----------------------------------------------------------------------


def effective_options(paths: Paths, alias: str, config: Optional[Path] = None) -> dict[str, list[str]]:
    """``ssh -G -F <user config> ALIAS`` (or ``-F CONFIG``): every option ssh would use, as lists of values."""
    argv = [*ssh_base(paths), "-G", alias] if config is None else [ssh_binary(), "-F", str(config), "-G", alias]
    try:
        result = subprocess.run(argv,
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                                timeout=CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ColabsshError("`ssh -G` did not finish", "check ~/.ssh/config (a Match exec that hangs?)") from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip() and "Pseudo-terminal" not in line]
        detail = (lines or [f"exit code {result.returncode}"])[0]
        raise ColabsshError(f"OpenSSH cannot use the config: {detail}",
                            "fix that line; ssh, VS Code and colabssh all read this file", BAD_INPUT)
    options: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        options.setdefault(key.lower(), []).append(value)
    return options


def expected_options(entry: HostEntry) -> dict[str, Optional[str]]:
    """What `ssh -G` must show for the alias; None means the option must be absent."""
    return {
        "hostname": entry.hostname.lower(),
        "port": str(entry.port),
        "user": entry.user,
        "hostkeyalias": entry.host_key_alias,
        "userknownhostsfile": str(entry.known_hosts),
        "stricthostkeychecking": _STRICT[entry.strict_host_key_checking],
        "identityfile": str(entry.identity_file),
        "identitiesonly": "yes",
        "checkhostip": "no",
        "proxycommand": entry.proxy_command,
        "proxyjump": None,
    }


def mismatches(effective: dict[str, list[str]], entry: HostEntry) -> list[str]:
    """The options where OpenSSH would not use colabssh's value, as 'name: got X, want Y'."""
    found = []
    for name, want in expected_options(entry).items():
        got = effective.get(name, [])
        if name == "identityfile":
            ok = want in got
        elif want is None:
            ok = not got or got == ["none"]
        else:
            ok = got[:1] == [want]
        if not ok:
            found.append(f"{name}: ssh uses {' '.join(got) or 'nothing'}, colabssh wrote {want or 'nothing'}")
    return found


def verify_effective(paths: Paths, entry: HostEntry) -> None:
    wrong = mismatches(effective_options(paths, entry.alias), entry)
    if wrong:
        raise ColabsshError(f"`ssh -G {entry.alias}` does not use colabssh's settings ({'; '.join(wrong)})",
                            f"something in {ssh_config_file(paths)} overrides them for '{entry.alias}': "
                            "remove that setting, or connect with --name OTHER", BAD_INPUT)


def confirm_with_openssh(paths: Paths, alias: str) -> None:
    """``ssh -F <user config> -o BatchMode=yes ALIAS true``: what works here works for VS Code."""
    argv = [*ssh_base(paths), "-o", "BatchMode=yes", "-T", alias, "true"]
    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                                timeout=CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ColabsshError(f"`ssh {alias} true` did not finish within {CHECK_TIMEOUT:.0f} s",
                            "the tunnel may be down: re-run the cell in Colab", UNREACHABLE) from None
    if result.returncode != 0:
        error = explain_ssh_failure(alias, result.returncode, result.stderr)
        detail = (result.stderr.strip().splitlines() or [""])[-1]
        raise ColabsshError(f"OpenSSH could not log in where colabssh's own check could: {error.message}"
                            + (f" [{detail}]" if detail and detail not in error.message else ""),
                            error.hint or "look for a setting in ~/.ssh/config that applies to every host",
                            UNREACHABLE)


# ---- steps 3-6 together -----------------------------------------------------------------------------------------


def preview_effective(paths: Paths, plan: Plan, entry: HostEntry) -> None:
    """What OpenSSH will make of the planned files, asked before they are written: ``ssh -G`` on copies of the
    planned user config and colabssh's own config (temp files in colabssh's folder, removed afterwards). A value
    that ssh would read otherwise than colabssh wrote it, whether from the code or because a setting of the
    user's wins, is refused here with every file as it was."""
    own, user = plan.files[paths.config][1], plan.files[paths.user_config][1]
    if own is None or user is None:
        return
    make_private_dir(paths.root, parents=True)
    temps: list[str] = []
    try:
        own_copy = _temp_copy(paths.root, "preview-own", own, temps)
        user_copy = _temp_copy(paths.root, "preview-user", _include_swapped(paths, user, own_copy), temps)
        copies = {str(user_copy): str(paths.user_config), str(own_copy): str(paths.config)}
        try:
            wrong = mismatches(effective_options(paths, entry.alias, config=user_copy), entry)
            if not wrong:
                return
            alone = mismatches(effective_options(paths, entry.alias, config=own_copy), entry)
        except ColabsshError as exc:  # ssh's message names the copy's path; the user knows the file by its own
            for copy, real in copies.items():
                exc.message = exc.message.replace(copy, real)
            raise
    finally:
        for temp in temps:
            remove_file(Path(temp))
    if alone:
        raise ColabsshError(f"OpenSSH would not use what colabssh writes for '{entry.alias}' ({'; '.join(alone)}); "
                            "colabssh changed nothing",
                            "the connection code (or option) holds a value OpenSSH rewrites: copy the code the cell "
                            "printed again", BAD_INPUT)
    raise ColabsshError(f"`ssh -G {entry.alias}` would not use colabssh's settings ({'; '.join(wrong)}); "
                        "colabssh changed nothing",
                        f"something in {ssh_config_file(paths)} overrides them for '{entry.alias}': remove that "
                        "setting, or connect with --name OTHER", BAD_INPUT)


def _temp_copy(folder: Path, label: str, data: bytes, made: list[str]) -> Path:
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{label}{TEMP_MARK}")  # 0600, as ssh wants its config
    made.append(name)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return Path(name)


def _include_swapped(paths: Paths, user: bytes, own_copy: Path) -> bytes:
    """The planned user config with its managed block's Include pointing at OWN_COPY instead."""
    include = include_line(paths).encode()
    lines = split_lines(user)
    span = find_span(lines, BEGIN_MARKER.encode(), END_MARKER.encode())
    for i in range(span.begin + 1, span.end) if span is not None else ():
        if line_content(lines[i]).strip(b" \t") == include:
            ending = lines[i][len(line_content(lines[i])):]
            lines[i] = f'Include "{own_copy.as_posix()}"'.encode() + ending
    return b"".join(lines)


def apply_and_verify(paths: Paths, entry: HostEntry, pin: Optional[str], login_check: Optional[Callable[[], None]],
                     before_undo: Callable[[], object] = lambda: None, session: Optional[Session] = None
                     ) -> list[Path]:
    """Write ENTRY, PIN and SESSION (its record in sessions.json) as one transaction under the lock, once
    ``ssh -G`` on the planned files agrees; then check what OpenSSH makes of the written files and run
    LOGIN_CHECK (None: no login). If a check fails, BEFORE_UNDO runs, the files go back to the bytes they had,
    and the error says so. Returns the paths written (none when the files were already so)."""
    applied: list[Plan] = []

    def make_plan() -> Plan:
        fresh = planned(lambda: plan_connect(paths, entry, pin))
        if session is not None:
            fresh = fresh.with_file(paths.sessions, *planned_sessions(paths, with_session(session)))
        if fresh.changed():
            preview_effective(paths, fresh, entry)
        applied.append(fresh)
        return fresh

    written = list(apply_with_retry(paths, make_plan) or [])
    try:
        verify_effective(paths, entry)
        if login_check is not None:
            login_check()
    except (ColabsshError, KeyboardInterrupt) as exc:  # Ctrl-C during the login check: the files go back too
        if applied and written:
            before_undo()
            try:
                undo(paths, applied[-1], written)
                note = "colabssh put its files back as they were"
            except ColabsshError as undo_error:
                note = f"colabssh could not put its files back: {undo_error.message}"
            if isinstance(exc, ColabsshError):
                exc.hint = f"{exc.hint}; {note}" if exc.hint else note
        raise
    return written


# ---- the whole flow -----------------------------------------------------------------------------------------


def repair_first(paths: Paths, report: Report) -> None:
    """Finish what a killed colabssh run left and bring the stores into agreement (repair.py), saying what."""
    from ..sshconfig.repair import repair

    for fixed in repair(paths):
        report(f"repaired: {fixed.line}")


def connect(options: ConnectOptions, paths: Optional[Paths] = None, report: Report = lambda line: None
            ) -> ConnectResult:
    paths = paths or Paths.from_env()
    alias = validate_alias(options.alias)
    if options.editor not in EDITORS:
        raise _bad(f"unknown editor {options.editor!r}", f"use one of: {', '.join(EDITORS)}")
    target = resolve_target(options)
    cloudflared = cloudflared_path() if target.tunnel == "cloudflared" else None
    result = ConnectResult(alias=alias, target=target, dry_run=options.dry_run)
    entry = host_entry(paths, alias, target, cloudflared)
    if not options.dry_run:
        repair_first(paths, report)
    pin = target.hostkey or kept_first_contact_pin(paths, alias, target)
    plan = planned(lambda: plan_connect(paths, entry, pin))  # collisions, malformed markers: refused here
    result.changed = plan.changed()
    if options.dry_run:
        result.diff = plan.diff() if plan.changed() else ""
        return result

    ensure_client_key(paths)
    endpoint = Endpoint(target.host, target.port, target.user,
                        proxy_argv(cloudflared, target.host) if cloudflared else None)
    if options.check:
        report(f"checking the login to {target.where} ...")
        if target.pinned:
            check_login(endpoint, target.hostkey, paths.key)
        else:
            result.presented_fingerprint = conncode.fingerprint(presented_host_key(endpoint))

    if plan.changed():
        result.closed_old_connection = close_shared_connection(paths, alias)
        if result.closed_old_connection:
            report(f"closed the shared connection of '{alias}' to its earlier runtime")

    def login_with_openssh() -> None:
        report(f"logging in with OpenSSH: ssh {alias} true")
        confirm_with_openssh(paths, alias)

    logs_in = options.check and target.auth == "key"  # a password session's ssh would ask for the password
    session = Session(alias=alias, connected_at=utc_now(), **asdict(target))  # every field of the target
    result.written = apply_and_verify(paths, entry, pin, login_with_openssh if logs_in else None, session=session)
    result.changed = bool(result.written)
    result.login_checked = logs_in
    if options.open_editor:
        result.editor = open_editor(options.editor, alias, target.content, report)
    return result


def _known(paths: Paths, alias: str) -> bool:
    """Whether ALIAS has a session record or a Host block (read without the lock: a hint, not a decision)."""
    try:
        return alias in load_sessions(paths) or host_block(split_lines(paths.config.read_bytes()), alias) is not None
    except (ColabsshError, OSError):
        return False


def forget(alias: str, paths: Optional[Paths] = None, report: Report = lambda line: None) -> list[Path]:
    """The exact inverse of connect: close the shared connection, then remove the block, the pin and the session
    in one transaction (the Include block with the last session).

    It first finishes what a killed run left (repair.py); when that already removed ALIAS (a forget of it that
    was cut short), the forget is done."""
    from ..sshconfig.repair import dropped, repair

    paths = paths or Paths.from_env()
    validate_alias(alias)
    known_before = _known(paths, alias)
    repairs = repair(paths)
    for fixed in repairs:
        report(f"repaired: {fixed.line}")  # said here too: repair_first would hide which alias went
    if not _known(paths, alias) and (known_before or dropped(repairs, alias)):
        drop_log(paths, alias)
        return []
    plan_forget(paths, alias)  # an unknown alias or malformed markers: refused before anything is closed
    written: list[Path] = []
    if close_shared_connection(paths, alias):
        report(f"closed the shared connection of '{alias}'")

    def make_plan() -> Plan:
        plan = plan_forget(paths, alias)
        return plan.with_file(paths.sessions, *planned_sessions(paths, without_session(alias)))

    written += list(apply_with_retry(paths, make_plan) or [])
    if drop_log(paths, alias):
        written.append(log_path(paths, alias))
    return written
