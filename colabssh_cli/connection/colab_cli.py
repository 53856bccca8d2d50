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

The first contact (connect's pre-flight, paramiko over colab's stdin/stdout) skips what colab writes before the SSH
banner, as OpenSSH does (the real CLI's update notice is several lines on stdout), waits while colab creates the
session's runtime (minutes), never ends colab in the middle of that (colab's store learns the runtime's name only at
its end), and when connect does not finish (an error, a time-out, Ctrl-C) it stops a runtime that colab created for
it (`colab stop -s NAME`) and says so; a session that existed before is never stopped.

Errors of the road (no `colab`, HTTP 404/429/400/401/403/502, an old CLI, a missing key) are recognised in
colab's stderr (colab_cli_errors.py), both in the pre-flight here and in ssh's stderr (remote.explain_ssh_failure),
and each becomes one line with its fix. paramiko is imported inside functions so that `colabssh --help` stays fast.
"""

from __future__ import annotations

import os
import select
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

from ..editor import EDITORS, EditorOutcome, open_editor
from ..errors import BAD_INPUT, MISSING_TOOL, UNREACHABLE, ColabsshError
from ..paths import Paths
from ..remote.advice import (
    CREATING,
    INSTALL_HINT,
    LOGIN_PROMPT,
    READY,
    ROAD,
    colab_message,
    drop_log,
    explain_colab_stderr,
    last_colab_output,
    log_path,
)
from ..remote.keys import ensure_client_key
from ..remote.runner import close_shared_connection, shared_connection_alive
from ..session import DEFAULT_ALIAS, NAME_PATTERN, Session, utc_now, validate_alias
from ..sshconfig.plan import host_key_alias, pinned_key, plan_connect
from ..sshconfig.render import HostEntry, control_dir_for, proxy_path_is_safe
from .flow import apply_and_verify, confirm_with_openssh, planned, repair_first

GPUS = ("T4", "L4", "G4", "A100", "H100")
HOSTNAME_SUFFIX = ".colab-cli.invalid"
FIRST_CONTACT_TIMEOUT = 300.0  # for the SSH banner, from colab's start, or from its runtime being made
CREATE_LIMIT = 900.0  # while colab creates a runtime (minutes; its own requests give up well before this)
STOP_TIMEOUT = 180.0  # `colab stop -s NAME`
PRE_BANNER_LINES = 1024  # lines before the SSH banner that OpenSSH accepts too (SSH_MAX_PRE_BANNER_LINES)
PRE_BANNER_BYTES = 256 * 1024
PRE_BANNER_SHOWN = 20  # of those, passed on as colab's progress (its update notice)
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
                     control_dir=control_dir_for(paths),
                     connect_timeout=None)  # colab may be creating the runtime: a timeout would kill it mid-way


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


@dataclass
class Contact:
    """What colab did during one connect: whether it created the runtime of SESSION, which connect then stops
    should it not finish (a runtime uses compute units for as long as it runs)."""

    session: str
    created: bool = False  # colab made the runtime and stored it under SESSION: `colab stop -s SESSION` stops it
    left_creating: bool = False  # colabssh stopped waiting while colab was still creating it (told the user)


class _Replayed:
    """The socket paramiko talks through, whose first bytes (the SSH banner on) colabssh has already read."""

    def __init__(self, sock: socket.socket, pending: bytes) -> None:
        self._sock = sock
        self._pending = pending

    def recv(self, size: int) -> bytes:
        if self._pending:
            chunk, self._pending = self._pending[:size], self._pending[size:]
            return chunk
        return self._sock.recv(size)

    def send(self, data: bytes) -> int:
        return self._sock.send(data)

    def settimeout(self, timeout: Optional[float]) -> None:
        self._sock.settimeout(timeout)

    def close(self) -> None:
        self._sock.close()

    @property
    def _closed(self) -> bool:  # paramiko's Transport.join looks at it
        return self._sock.fileno() < 0


class _NoBanner(Exception):
    """colab wrote to the SSH stream, and no SSH banner came."""


class _ColabBridge:
    """`colab ssh --proxy-mode`, run by colabssh: its stdin and stdout one end of a socket pair, its stderr read
    as it comes (its progress reported, its errors kept, its creating a runtime followed)."""

    def __init__(self, argv: list[str], session: str, report: Report) -> None:
        self.session = session
        self.report = report
        self.lines: list[str] = []
        self.creating = False  # colab said it creates the session's runtime (the session was not in its store)
        self.ready = False  # ... and that the runtime is made and stored under the session's name
        self.ready_at = 0.0
        self.login = False  # colab asks for a Google login: it cannot here (its stdin is the ssh stream)
        self.ended = False  # colab's stderr ended: colab is gone
        self.changed = threading.Condition()
        self.started = time.monotonic()
        self.ours, theirs = socket.socketpair()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        try:
            self.process = subprocess.Popen(argv, stdin=theirs.fileno(), stdout=theirs.fileno(),
                                            stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            self._close()
            raise ColabsshError(f"cannot start {argv[0]}: {exc.strerror}", INSTALL_HINT, MISSING_TOOL) from None
        finally:
            theirs.close()
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()

    # -- colab's stderr

    def _read_stderr(self) -> None:
        creating = CREATING.format(session=self.session)
        assert self.process.stderr is not None
        try:
            for raw in self.process.stderr:
                line = raw.decode("utf-8", errors="replace").rstrip()
                with self.changed:
                    self.lines.append(line)
                    if creating in line:
                        self.creating = True
                    elif self.creating and line.strip() == READY:
                        self.ready, self.ready_at = True, time.monotonic()
                    elif LOGIN_PROMPT.search(line) and not self.login:
                        self.login = True  # asked before Colab assigns a runtime: nothing is left to stop
                        self.process.terminate()
                    self.changed.notify_all()
                self._wake()
                if line.startswith("[colab] ") and explain_colab_stderr(line, self.session) is None:
                    self.report(f"  colab: {line.removeprefix('[colab] ')}")
        finally:
            with self.changed:
                self.ended = True
                self.changed.notify_all()
            self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except OSError:  # full (nobody is waiting), or closed
            pass

    def stderr(self) -> str:
        with self.changed:
            return "\n".join(self.lines)

    def mid_creation(self) -> bool:
        """colab is creating the runtime now: Colab has (or is about to have) assigned it, and colab's store does
        not know its name yet, so a colab cut off now leaves a runtime that `colab stop -s NAME` cannot stop."""
        return self.creating and not (self.ready or self.login or self.ended)

    def _remaining(self, timeout: float) -> float:
        with self.changed:
            if self.mid_creation():
                return self.started + CREATE_LIMIT - time.monotonic()
            return max(self.started, self.ready_at) + timeout - time.monotonic()

    # -- colab's stdout: the SSH stream

    def read_to_banner(self, timeout: float) -> bytes:
        """Skip the lines colab writes before the SSH banner, as OpenSSH does (RFC 4253 4.2; the real CLI's update
        notice is several lines on stdout), and return the bytes from the banner on.

        Waits TIMEOUT from colab's start, or from the runtime being ready when colab creates one; while colab
        creates it (minutes), up to CREATE_LIMIT. paramiko alone would give each line after the first 2 s."""
        buffer, lines, skipped = b"", 0, 0
        while True:
            while not buffer.startswith(b"SSH-") and b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                lines, skipped = lines + 1, skipped + len(line) + 1
                shown = line.decode("utf-8", errors="replace").strip()
                if shown and lines <= PRE_BANNER_SHOWN:
                    self.report(f"  colab: {shown.removeprefix('[colab] ')}")
            if buffer.startswith(b"SSH-"):
                return buffer
            if lines > PRE_BANNER_LINES or skipped + len(buffer) > PRE_BANNER_BYTES:
                raise _NoBanner(f"colab wrote {lines} lines and {skipped + len(buffer)} bytes to the SSH stream, "
                                "and no SSH banner")
            remaining = self._remaining(timeout)
            if remaining <= 0:
                raise TimeoutError("no SSH banner")
            readable, _, _ = select.select([self.ours.fileno(), self._wake_r], [], [], remaining)
            if self._wake_r in readable:
                os.read(self._wake_r, 4096)
            if self.ours.fileno() in readable:
                data = self.ours.recv(65536)
                if not data:
                    raise EOFError("colab ended before the SSH banner")
                buffer += data

    # -- the end

    def finish(self, contact: Contact) -> None:
        """End colab, but never while it creates a runtime (see mid_creation): wait for it to finish, so that
        connect can stop that runtime; a second Ctrl-C leaves colab to finish alone, and says so."""
        self.ours.close()  # colab's stdin ends: a colab that bridges closes its WebSocket and exits
        interrupted = False
        try:
            with self.changed:
                limit = self.started + CREATE_LIMIT - time.monotonic()
                waiting = self.mid_creation() and limit > 0
            if waiting:
                self.report(f"colab is still creating the runtime of colab session '{self.session}': waiting for it "
                            "to finish, so that it can be stopped (Ctrl-C again leaves colab to finish it alone)")
                with self.changed:
                    self.changed.wait_for(lambda: not self.mid_creation(), timeout=limit)
        except KeyboardInterrupt:
            interrupted = True
        with self.changed:
            contact.created = contact.created or (self.creating and self.ready)
            left = self.mid_creation()
        if left:
            contact.left_creating = True
            self.report(f"colab is left creating the runtime of colab session '{self.session}' (pid "
                        f"{self.process.pid}): once it is made it uses compute units until `colab stop -s "
                        f"{self.session}` ends it (`colab sessions` lists it)")
        else:
            _end(self.process)
            self.reader.join(timeout=5)
            self._close()
        if interrupted:
            raise KeyboardInterrupt

    def _close(self) -> None:
        self.ours.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


def _end(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """Wait for colab to end (the runtime allows one connection: nothing else may connect before), then stop it."""
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        stop_child(process, 5.0)


def first_contact(argv: list[str], hostname: str, key_path: Path, session: str, report: Report,
                  timeout: Optional[float] = None, contact: Optional[Contact] = None) -> str:
    """Log in through colab (ARGV: its ProxyCommand) with colabssh's key; return the host key it showed.

    The host key is taken as presented ("trust on first use"): the road to it is Colab's WebSocket, opened with
    the user's Google credentials over TLS to Google, so what answers is the runtime Colab assigned to SESSION.
    colab's stderr is read as it comes: its progress is reported, its errors explained. CONTACT learns whether
    colab created the session's runtime; colab is never cut off while it creates one (a Ctrl-C waits for it).
    """
    import paramiko

    from ..remote.preflight import _load_client_key, _quiet_paramiko

    _quiet_paramiko()
    pkey = _load_client_key(key_path)
    timeout = FIRST_CONTACT_TIMEOUT if timeout is None else timeout
    contact = contact if contact is not None else Contact(session)
    colab = _ColabBridge(argv, session, report)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # kept in memory only; colabssh pins it
    failure: Optional[BaseException] = None
    presented = ""
    try:
        pending = colab.read_to_banner(timeout)
        client.connect(hostname, 22, username="root", pkey=pkey, allow_agent=False, look_for_keys=False,
                       sock=_Replayed(colab.ours, pending),  # type: ignore[arg-type]
                       timeout=60, banner_timeout=60, auth_timeout=60, channel_timeout=60)
        transport = client.get_transport()
        assert transport is not None
        key = transport.get_remote_server_key()
        presented = f"{key.get_name()} {key.get_base64()}"
    except BaseException as exc:  # noqa: BLE001 - every failure becomes one explained error; Ctrl-C after cleanup
        failure = exc
    finally:
        client.close()
        colab.finish(contact)
    if failure is None:
        return presented
    if not isinstance(failure, Exception):
        raise failure
    if contact.left_creating:
        raise ColabsshError(f"colab was still creating the runtime of colab session '{session}' after "
                            f"{CREATE_LIMIT / 60:.0f} minutes",
                            f"`colab sessions` lists it once it is made: then connect again to use it, or `colab stop "
                            f"-s {session}` ends it", UNREACHABLE)
    raise _explain_first_contact(failure, colab.stderr(), session, argv, timeout)


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
    elif isinstance(exc, _NoBanner):
        detail = str(exc)
    else:
        detail = colab_message(stderr) or (str(exc).rstrip(".") or type(exc).__name__)
    return ColabsshError(f"`{' '.join(argv[:5])}` gave no connection to the runtime ({detail})",
                         f"run `colab ssh -s {session}` in a terminal to see what colab says; `colab sessions` lists "
                         "the runtimes", UNREACHABLE)


def stop_runtime(colab: str, session: str, report: Report) -> bool:
    """`colab stop -s SESSION`, for the runtime colab created for a connect that did not finish; True when colab
    says it stopped it. Says what happened either way."""
    report(f"stopping the runtime colab created for colab session '{session}' (connect did not finish, and a "
           f"runtime uses compute units while it runs): {colab} stop -s {session}")
    why = ""
    try:
        done = subprocess.run([colab, "stop", "-s", session], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=STOP_TIMEOUT, start_new_session=True)
    except subprocess.TimeoutExpired:
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


def _check_and_write(options: ColabCliOptions, paths: Paths, result: ColabCliResult, entry: HostEntry,
                     old_pin: Optional[str], contact: Contact, report: Report) -> None:
    """Steps 3-6: the first contact (or the open shared connection), the files, OpenSSH's login, the record."""
    alias, session = result.alias, result.session
    pin: Optional[str] = None
    if options.check and not result.changed and shared_connection_alive(paths, alias):
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
            argv = proxy_argv(result.colab, session, paths.key, result.gpu)
            pin = retry_when_busy(lambda: first_contact(argv, entry.hostname, paths.key, session, report,
                                                        contact=contact))
    if pin is not None:
        result.fingerprint = fingerprint(pin)
        if old_pin is not None and old_pin != pin:
            result.replaced_fingerprint = fingerprint(old_pin)

    def check_with_openssh() -> None:
        report(f"logging in with OpenSSH: ssh {alias} true (it keeps the shared connection open)")
        if not result.through_shared_connection:
            drop_log(paths, alias)  # no colab writes to it now; what it holds next is this login's
        try:
            retry_when_busy(lambda: confirm_with_openssh(paths, alias))
        except BaseException:
            logged = last_colab_output(paths, alias)  # this login's colab: did it make a runtime?
            if not result.through_shared_connection and CREATING.format(session=session) in logged \
                    and READY in logged:
                contact.created = True
            raise

    result.written = apply_and_verify(paths, entry, pin, check_with_openssh if options.check else None,
                                      before_undo=lambda: close_shared_connection(paths, alias),
                                      session=session_record(alias, session, result.gpu, result.colab))
    result.changed = bool(result.written)
    result.login_checked = options.check


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
    if not options.dry_run:
        repair_first(paths, report)
    entry = host_entry(paths, alias, session, gpu, colab)
    old_pin = pinned_key(paths, alias)
    first = planned(lambda: plan_connect(paths, entry, old_pin))  # collisions, malformed markers: refused here
    result = ColabCliResult(alias=alias, session=session, gpu=gpu, colab=colab, changed=first.changed(),
                            dry_run=options.dry_run)
    if options.dry_run:
        result.diff = first.diff() if first.changed() else ""
        return result

    ensure_client_key(paths)
    contact = Contact(session)
    try:
        _check_and_write(options, paths, result, entry, old_pin, contact, report)
    except BaseException:  # Ctrl-C too: a runtime that colab created for this connect is not left running
        if contact.created:
            stop_runtime(colab, session, report)
        raise
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
