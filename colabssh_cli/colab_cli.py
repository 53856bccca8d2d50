"""The typed core of `colabssh connect --via colab-cli`: Google's own `colab ssh --proxy-mode` as the road in.

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
  contact (through the Google-authenticated road), ssh refuses any other key afterwards, and running connect
  again re-pins (a runtime made anew behind a session name has a new host key).

Errors of the road (no `colab`, HTTP 404/429/400/401/403/502, an old CLI, a missing key) are recognised in
colab's stderr (colab_cli_errors.py), both in the pre-flight here and in ssh's stderr (remote.explain_ssh_failure),
and each becomes one line with its fix. paramiko is imported inside functions so that `colabssh --help` stays fast.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, TypeVar

from colab_bootstrap.conncode import fingerprint
from colab_bootstrap.processes import stop_child

from .colab_cli_errors import INSTALL_HINT, LOGIN_PROMPT, ROAD, explain_colab_stderr, log_path
from .connect import apply_and_verify, confirm_with_openssh, planned
from .editor import EDITORS, EditorOutcome, open_editor
from .errors import BAD_INPUT, MISSING_TOOL, UNREACHABLE, ColabsshError
from .keys import ensure_client_key
from .paths import Paths
from .remote import close_shared_connection, shared_connection_alive
from .sessions import DEFAULT_ALIAS, NAME_PATTERN, Session, record_session, utc_now, validate_alias
from .sshconfig import HostEntry, control_dir_for, host_key_alias, pinned_key, plan_connect, proxy_path_is_safe

GPUS = ("T4", "L4", "G4", "A100", "H100")
HOSTNAME_SUFFIX = ".colab-cli.invalid"
FIRST_CONTACT_TIMEOUT = 300.0  # colab creates a missing session's runtime first: that can take minutes
BUSY_RETRY_DELAYS = (0.5, 1.0, 2.0)  # Colab may count a just-closed connection for a moment

T = TypeVar("T")
Report = Callable[[str], None]


# ---- the options ------------------------------------------------------------------------------------------


def validate_session_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name or ""):
        raise ColabsshError(f"the colab session name {name!r} is not allowed",
                            "use letters, digits, '.', '_' and '-', starting with a letter or digit", BAD_INPUT)
    return name


def validate_gpu(gpu: Optional[str]) -> str:
    """'' for none; else one of GPUS (any case)."""
    if gpu is None or gpu == "":
        return ""
    if gpu.upper() not in GPUS:
        raise ColabsshError(f"unknown GPU {gpu!r}", f"use one of {', '.join(GPUS)} (or leave --gpu out for a CPU "
                            "runtime)", BAD_INPUT)
    return gpu.upper()


def check_road_arguments(via: Optional[str], *, session: Optional[str], gpu: Optional[str],
                         code_road_options: list[str]) -> bool:
    """True for `--via colab-cli`; refuse options that belong to the other road (CODE_ROAD_OPTIONS: their names)."""
    if via is None:
        if session is not None or gpu is not None:
            raise ColabsshError("--session and --gpu belong to `--via colab-cli`",
                                "colabssh connect --via colab-cli --session NAME [--gpu T4]", BAD_INPUT)
        return False
    if via != ROAD:
        raise ColabsshError(f"unknown road {via!r} for --via", "the one road besides a connection code is "
                            "`--via colab-cli` (Google's `colab ssh --proxy-mode`)", BAD_INPUT)
    if code_road_options:
        raise ColabsshError(f"{', '.join(code_road_options)} cannot be combined with --via colab-cli",
                            "colab-cli finds the runtime by its session name (--session), not by a code or address",
                            BAD_INPUT)
    return True


def colab_path() -> str:
    """The absolute path of the `colab` CLI (ssh runs a ProxyCommand in a non-login shell: no PATH guesses)."""
    if os.name == "nt":
        raise ColabsshError("Google's `colab` CLI runs on Linux and macOS only",
                            "on Windows, use the colabssh cell in a notebook and `colabssh connect CODE`", MISSING_TOOL)
    found = shutil.which("colab")
    if not found:
        raise ColabsshError("Google's `colab` CLI is not installed on this machine", INSTALL_HINT, MISSING_TOOL)
    path = str(Path(found).absolute())
    if not proxy_path_is_safe(path):
        raise ColabsshError(f"colab's path {path!r} has characters a ProxyCommand cannot carry safely",
                            "install it in a folder with a plain name (no quotes, $, `, % or \\)", MISSING_TOOL)
    return path


# ---- the Host block ---------------------------------------------------------------------------------------


def hostname_for(session: str) -> str:
    return f"{session}{HOSTNAME_SUFFIX}"


def proxy_argv(colab: str, session: str, key: Path, gpu: str = "") -> list[str]:
    argv = [colab, "ssh", "--proxy-mode", "-s", session, "-i", str(key)]
    return argv + (["--gpu", gpu] if gpu else [])


def proxy_command(colab: str, session: str, key: Path, gpu: str = "", log: Optional[Path] = None) -> str:
    """The ProxyCommand as ssh_config text: ssh runs ``exec <it>`` with /bin/sh, so paths are in double quotes
    (checked to hold nothing the shell or ssh's %-tokens would read) and ``2>LOG`` keeps colab's stderr."""
    for what, path in (("colabssh's key path", key), ("colabssh's log path", log)):
        if path is not None and not proxy_path_is_safe(str(path)):
            raise ColabsshError(f"{what} {str(path)!r} has characters a ProxyCommand cannot carry safely",
                                "use a home folder with a plain name (no quotes, $, `, % or \\)", BAD_INPUT)
    command = f'"{colab}" ssh --proxy-mode -s {session} -i "{key}"' + (f" --gpu {gpu}" if gpu else "")
    return command + (f' 2>"{log}"' if log is not None else "")


def host_entry(paths: Paths, alias: str, session: str, gpu: str, colab: str) -> HostEntry:
    return HostEntry(alias=alias, hostname=hostname_for(session), port=22, user="root", identity_file=paths.key,
                     known_hosts=paths.known_hosts, host_key_alias=host_key_alias(alias),
                     strict_host_key_checking="accept-new",
                     proxy_command=proxy_command(colab, session, paths.key, gpu, log_path(paths, alias)),
                     control_dir=control_dir_for(paths))


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


# ---- the first contact ------------------------------------------------------------------------------------


def _end(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """Wait for colab to end (the runtime allows one connection: nothing else may connect before), then stop it."""
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        stop_child(process, 5.0)


def first_contact(argv: list[str], hostname: str, key_path: Path, session: str, report: Report,
                  timeout: float = FIRST_CONTACT_TIMEOUT) -> str:
    """Log in through colab (ARGV: its ProxyCommand) with colabssh's key; return the host key it showed.

    The host key is taken as presented ("trust on first use"): the road to it is Colab's WebSocket, opened with
    the user's Google credentials over TLS to Google, so what answers is the runtime Colab assigned to SESSION.
    colab's stderr is read as it comes: its progress is reported, its errors explained.
    """
    import paramiko

    from .preflight import _load_client_key, _quiet_paramiko

    _quiet_paramiko()
    pkey = _load_client_key(key_path)
    ours, theirs = socket.socketpair()
    try:
        process = subprocess.Popen(argv, stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=subprocess.PIPE,
                                   start_new_session=True)
    except OSError as exc:
        ours.close()
        raise ColabsshError(f"cannot start {argv[0]}: {exc.strerror}", INSTALL_HINT, MISSING_TOOL) from None
    finally:
        theirs.close()
    lines: list[str] = []

    def read_stderr() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip()
            lines.append(line)
            if LOGIN_PROMPT.search(line):
                process.terminate()  # its stdin is the ssh stream: it cannot ask anything here
            elif line and explain_colab_stderr(line, session) is None:
                report(f"  colab: {line.removeprefix('[colab] ')}")

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # kept in memory only; colabssh pins it
    failure: Optional[BaseException] = None
    presented = ""
    try:
        client.connect(hostname, 22, username="root", pkey=pkey, allow_agent=False, look_for_keys=False, sock=ours,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=60, channel_timeout=60)
        transport = client.get_transport()
        assert transport is not None
        key = transport.get_remote_server_key()
        presented = f"{key.get_name()} {key.get_base64()}"
    except Exception as exc:  # noqa: BLE001 - every failure becomes one explained error
        failure = exc
    finally:
        client.close()
        ours.close()
        _end(process)
        reader.join(timeout=5)
    if failure is None:
        return presented
    raise _explain_first_contact(failure, "\n".join(lines), session, argv, timeout)


def _explain_first_contact(exc: BaseException, stderr: str, session: str, argv: list[str],
                           timeout: float) -> ColabsshError:
    import paramiko

    known = explain_colab_stderr(stderr, session)
    if known is not None:
        return known
    if isinstance(exc, paramiko.AuthenticationException):
        return ColabsshError(f"the runtime of colab session '{session}' refused colabssh's key",
                             "colab sends the key given with -i to the runtime: check that the ProxyCommand still "
                             "has it, and that `colab ssh -s " + session + "` works in a terminal", UNREACHABLE)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        detail = f"no SSH answer within {timeout:.0f} s"
    else:
        detail = next((line for line in reversed(stderr.splitlines()) if line.strip()), "") or \
            (str(exc).rstrip(".") or type(exc).__name__)
    return ColabsshError(f"`{' '.join(argv[:5])}` gave no connection to the runtime ({detail})",
                         f"run `colab ssh -s {session}` in a terminal to see what colab says; `colab sessions` lists "
                         "the runtimes", UNREACHABLE)


# ---- connect ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColabCliOptions:
    session: Optional[str] = None  # default: the alias
    gpu: Optional[str] = None  # for a runtime colab creates (T4, L4, G4, A100, H100)
    alias: str = DEFAULT_ALIAS
    open_editor: bool = True
    editor: str = "code"
    check: bool = True
    dry_run: bool = False


@dataclass
class ColabCliResult:
    alias: str
    session: str
    gpu: str
    colab: str
    changed: bool = False
    written: list[Path] = field(default_factory=list)
    diff: str = ""
    dry_run: bool = False
    login_checked: bool = False
    fingerprint: str = ""  # the key pinned now; '' with --no-check (ssh pins it at its first contact)
    replaced_fingerprint: str = ""  # the pin it replaced: another runtime behind the session now
    through_shared_connection: bool = False  # checked through the alias's open shared connection
    closed_old_connection: bool = False
    editor: Optional[EditorOutcome] = None


def session_record(alias: str, session: str, gpu: str, colab: str) -> Session:
    return Session(alias=alias, host=hostname_for(session), port=22, user="root", tunnel=ROAD, content="/content",
                   python="python3", gpu=gpu, auth="key", connected_at=utc_now(),
                   extra={"session": session, "colab": colab})


def connect_via_colab_cli(options: ColabCliOptions, paths: Optional[Paths] = None,
                          report: Report = lambda line: None) -> ColabCliResult:
    """Write the alias's Host block for `colab ssh --proxy-mode`, pin the runtime's key, check with OpenSSH."""
    paths = paths or Paths.from_env()
    alias = validate_alias(options.alias)
    if options.editor not in EDITORS:
        raise ColabsshError(f"unknown editor {options.editor!r}", f"use one of: {', '.join(EDITORS)}", BAD_INPUT)
    session = validate_session_name(options.session or alias)
    gpu = validate_gpu(options.gpu)
    colab = colab_path()
    entry = host_entry(paths, alias, session, gpu, colab)
    old_pin = pinned_key(paths, alias)
    first = planned(lambda: plan_connect(paths, entry, old_pin))  # collisions, malformed markers: refused here
    result = ColabCliResult(alias=alias, session=session, gpu=gpu, colab=colab, changed=first.changed(),
                            dry_run=options.dry_run)
    if options.dry_run:
        result.diff = first.diff() if first.changed() else ""
        return result

    ensure_client_key(paths)
    pin: Optional[str] = None
    if options.check and not first.changed() and shared_connection_alive(paths, alias):
        pin = old_pin  # the open connection is to the pinned runtime; a second one would be refused (429)
        result.through_shared_connection = True
        report(f"the shared connection of '{alias}' is open: checking through it")
    else:
        result.closed_old_connection = close_shared_connection(paths, alias)
        if result.closed_old_connection:
            report(f"closed the shared connection of '{alias}' (it went to the runtime pinned before)")
        if options.check:
            report(f"first contact through `colab ssh --proxy-mode -s {session}` (a session that does not exist yet "
                   "is created now: a billable runtime, which can take minutes) ...")
            argv = proxy_argv(colab, session, paths.key, gpu)
            pin = retry_when_busy(lambda: first_contact(argv, entry.hostname, paths.key, session, report))
    if pin is not None:
        result.fingerprint = fingerprint(pin)
        if old_pin is not None and old_pin != pin:
            result.replaced_fingerprint = fingerprint(old_pin)

    def check_with_openssh() -> None:
        report(f"logging in with OpenSSH: ssh {alias} true (it keeps the shared connection open)")
        retry_when_busy(lambda: confirm_with_openssh(paths, alias))

    result.written = apply_and_verify(paths, entry, pin, check_with_openssh if options.check else None,
                                      before_undo=lambda: close_shared_connection(paths, alias))
    result.changed = bool(result.written)
    result.login_checked = options.check
    if record_session(paths, session_record(alias, session, gpu, colab)):
        result.written.append(paths.sessions)
    if options.open_editor:
        result.editor = open_editor(options.editor, alias, "/content", report)
    return result


# ---- what this road cannot do -------------------------------------------------------------------------------


def refuse_drive_commands(session: Session, command: str) -> None:
    """sync and restore need Drive on the runtime; a runtime made by `colab` has no notebook page to mount it."""
    if session.tunnel != ROAD:
        return
    raise ColabsshError(f"`colabssh {command}` needs Google Drive on the runtime, and '{session.alias}' has none: "
                        "drive.mount asks for consent on the notebook page, and a runtime made by `colab` has no page",
                        "copy work off the runtime with `colabssh pull PATH` (and onto it with `colabssh push PATH`); "
                        "for Drive backups, start the runtime from a notebook with the colabssh cell", BAD_INPUT)


def colab_session_of(session: Session) -> str:
    """The colab session name behind a colab-cli session ('' for other roads)."""
    return str(session.extra.get("session", "")) if session.tunnel == ROAD else ""
