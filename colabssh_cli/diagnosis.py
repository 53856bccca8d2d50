"""`colabssh doctor`: check this machine's side of colabssh; every failed check comes with its fix.

The checks, in order: OpenSSH's client and its version; colabssh's key and its modes; the marker block,
its Include line and the file modes ssh insists on in ``~/.ssh/config``; the session list; for each
session what ``ssh -G ALIAS`` makes of the config (colabssh's values must win), the program its
ProxyCommand runs (cloudflared, Google's `colab`) when it has one, and whether the runtime answers
(``ssh -o ConnectTimeout=N ALIAS true`` through the remote seam); last the editor CLIs and their
Remote-SSH extension, when they can tell. A check is ok, warn (worth knowing, nothing broken), fail
(colabssh, ssh or VS Code will not work) or skip (does not apply). No typer, no rich here:
commands/doctor.py renders the report.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from colab_bootstrap import conncode

from .editor import EDITORS, installed_extensions
from .errors import ColabsshError
from .paths import Paths
from .remote.runner import Remote, explain_ssh_failure
from .session import Login, Session, Transport, load_sessions
from .sshconfig import text
from .sshconfig.effective import written_mismatches, written_options
from .sshconfig.render import BEGIN_MARKER, END_MARKER

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
MIN_OPENSSH = (7, 3)  # the Include line colabssh puts in ~/.ssh/config (and `ssh -G` showing ProxyJump)
TESTED_OPENSSH = (8, 0)  # the oldest client the tests' assumptions are known to hold for
REACH_TIMEOUT = 10  # seconds, ssh's ConnectTimeout for the reachability check
COLAB_LIST_TIMEOUT = 60  # seconds for `colab sessions` (it may refresh a token first)
NEEDS = ("colabssh needs OpenSSH 7.3+ (Include in ~/.ssh/config, ssh -G); ed25519 keys need 6.5+; "
         "connection sharing (ControlMaster) needs Unix sockets, so it is off with Windows' OpenSSH")
MARKER_FIX = ("keep exactly one colabssh block (start and end marker lines, in that order) or delete both marker "
              "lines and what is between them, then run `colabssh connect CODE` again")
CLOUDFLARED_URL = "https://developers.cloudflare.com/cloudflare-one/connections/connect-networks/downloads/"

Report = Callable[[str], None]


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.status == FAIL]

    def count(self, status: str) -> int:
        return sum(1 for check in self.checks if check.status == status)

    def as_json(self) -> dict[str, Any]:
        return {"ok": not self.failed, "checks": [asdict(check) for check in self.checks]}


# ---- the ssh client ------------------------------------------------------------------------------------------


def judge_ssh_version(banner: str) -> Check:
    """What `ssh -V` printed, judged against what colabssh needs of the client."""
    first = (banner.strip().splitlines() or [""])[0]
    found = re.search(r"OpenSSH_(?:for_Windows_)?([0-9]+)\.([0-9]+)", first)
    if found is None:
        return Check("ssh client", FAIL, f"not OpenSSH: {first or 'ssh -V printed nothing'}",
                     "install OpenSSH's client (Debian/Ubuntu: apt-get install openssh-client; Windows: the "
                     "OpenSSH Client optional feature); VS Code's Remote-SSH uses it too")
    version = (int(found.group(1)), int(found.group(2)))
    shown = f"OpenSSH {version[0]}.{version[1]}"
    if version < MIN_OPENSSH:
        return Check("ssh client", FAIL, f"{shown} is too old: {NEEDS}", "install OpenSSH 8 or newer")
    if version < TESTED_OPENSSH:
        return Check("ssh client", WARN, f"{shown} should work but is untested (colabssh is tested with 8.x "
                     f"and 9.x): {NEEDS}", "install OpenSSH 8 or newer if something fails")
    return Check("ssh client", OK, f"{shown} ({first.split(',')[0]})")


def ssh_client_check() -> tuple[Check, Optional[str]]:
    ssh = shutil.which("ssh")
    if ssh is None:
        return Check("ssh client", FAIL, "OpenSSH's ssh is not on PATH",
                     "install it (Debian/Ubuntu: apt-get install openssh-client; macOS has it; Windows: Settings > "
                     "Optional features > OpenSSH Client)"), None
    try:
        done = subprocess.run([ssh, "-V"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("ssh client", FAIL, f"{ssh} -V did not run ({type(exc).__name__})",
                     "reinstall OpenSSH's client"), None
    check = judge_ssh_version(done.stderr or done.stdout)
    return check, (ssh if check.status != FAIL else None)


# ---- colabssh's key ------------------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _posix() -> bool:
    return os.name != "nt"


def key_check(paths: Paths, sessions: dict[str, Session]) -> Check:
    if not paths.key.exists():
        if sessions:
            return Check("colabssh key", FAIL, f"{paths.key} is missing: no session can log in",
                         "run `colabssh bootstrap` (it makes a new key), run the new cell in Colab, then "
                         "`colabssh connect` its code")
        return Check("colabssh key", SKIP, "not made yet (`colabssh bootstrap` or `connect` makes it)")
    if _posix() and _mode(paths.key) & 0o077:
        return Check("colabssh key", FAIL, f"{paths.key} has mode {_mode(paths.key):04o}: ssh refuses a private "
                     "key that others can read", f"chmod 600 {paths.key}")
    try:
        public = paths.public_key.read_text(encoding="utf-8").split()
    except OSError:
        return Check("colabssh key", WARN, f"{paths.public_key} is missing",
                     "`colabssh bootstrap` writes it again from the private key")
    derived = _public_from_private(paths.key)
    if derived is not None and derived[:2] != public[:2]:
        return Check("colabssh key", FAIL, f"{paths.public_key} is not the public half of {paths.key}: "
                     "cells rendered from it authorise a key colabssh does not have",
                     f"delete {paths.public_key}, run `colabssh bootstrap` (it writes it again), re-run the cell")
    if _posix() and _mode(paths.root) & 0o077:
        return Check("colabssh key", WARN, f"{paths.root} has mode {_mode(paths.root):04o}: others can look in",
                     f"chmod 700 {paths.root}")
    try:
        shown = f"{public[0]} {conncode.fingerprint(' '.join(public[:2]))}"
    except (IndexError, ValueError):
        shown = "an unreadable public key"
    mode = f", mode {_mode(paths.key):04o}" if _posix() else ""
    return Check("colabssh key", OK, f"{paths.key} ({shown}{mode})")


def _public_from_private(key: Path) -> Optional[list[str]]:
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        return None
    try:
        done = subprocess.run([keygen, "-y", "-f", str(key)], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.split() if done.returncode == 0 else None


# ---- ~/.ssh/config -------------------------------------------------------------------------------------------


def _unsafe_modes(path: Path) -> Optional[Check]:
    """ssh refuses a user config (and any file it Includes) that others may write to."""
    if not _posix() or not path.exists():
        return None
    info = path.stat()
    if stat.S_IMODE(info.st_mode) & 0o022 or info.st_uid not in (0, os.geteuid()):
        return Check("ssh config", FAIL, f"{path} has mode {stat.S_IMODE(info.st_mode):04o}: ssh stops with "
                     "'Bad owner or permissions' when others may write to it (Debian's ssh lets a group of your "
                     "own write)", f"chmod 600 {path}")
    return None


def config_check(paths: Paths, sessions: dict[str, Session]) -> Check:
    for path in (paths.user_config, paths.config):
        unsafe = _unsafe_modes(path)
        if unsafe is not None:
            return unsafe
    try:
        lines = text.split_lines(paths.user_config.read_bytes())
    except FileNotFoundError:
        lines = []
    except OSError as exc:
        return Check("ssh config", FAIL, f"cannot read {paths.user_config}: {exc.strerror}",
                     "make it readable by you (chmod 600)")
    try:
        span = text.find_span(lines, BEGIN_MARKER.encode(), END_MARKER.encode())
    except text.MarkerError as exc:
        return Check("ssh config", FAIL, f"{paths.user_config}: {exc}", MARKER_FIX)
    if span is None:
        if sessions:
            return Check("ssh config", FAIL, f"{paths.user_config} has no colabssh block: ssh and VS Code do not "
                         f"see {', '.join(sorted(sessions))}",
                         "run `colabssh connect CODE` again (it adds the block), or `colabssh forget ALIAS`")
        return Check("ssh config", OK, "no colabssh block (no session yet)")
    includes: list[list[str]] = []
    for i in range(span.begin + 1, span.end):
        parsed = text.keyword_and_rest(lines[i])
        if parsed is None:
            continue
        if parsed[0] != "include":
            return Check("ssh config", FAIL, f"{paths.user_config} line {i + 1} is inside colabssh's block but "
                         f"colabssh did not write it ({text.show(lines[i])!r})",
                         "move your line above the block's start marker or below its end marker")
        includes.append(text.split_args(parsed[1]))
    wanted = [[paths.config.as_posix()]]
    if includes != wanted:
        named = " ".join(" ".join(args) for args in includes) or "nothing"
        return Check("ssh config", FAIL, f"the colabssh block in {paths.user_config} includes {named}, not "
                     f"{paths.config}", "run `colabssh connect CODE` again: it rewrites the block")
    if not sessions and not paths.config.exists():
        return Check("ssh config", WARN, f"{paths.user_config} has a colabssh block but there is no session",
                     "delete the block's three lines (or connect again)")
    above = [i + 1 for i in range(span.begin) if text.keyword_and_rest(lines[i]) is not None]
    where = f"lines {span.begin + 1}-{span.end + 1} of {paths.user_config}"
    if above:
        return Check("ssh config", WARN, f"Include {paths.config} at {where}, below {len(above)} setting line(s) "
                     "of yours (ssh takes the first value it reads)",
                     "the `ssh -G` checks say whether they override a session; if so, move them below the block")
    return Check("ssh config", OK, f"Include {paths.config} at {where}")


def sessions_check(paths: Paths) -> tuple[Check, dict[str, Session]]:
    try:
        sessions = load_sessions(paths)
    except ColabsshError as exc:
        return Check("sessions", FAIL, exc.message, exc.hint), {}
    if not sessions:
        return Check("sessions", OK, "none yet (run the cell in Colab, then `colabssh connect CODE`)"), sessions
    return Check("sessions", OK, ", ".join(f"{s.alias} ({s.tunnel})" for s in sessions.values())), sessions


def agreement_checks(paths: Paths) -> list[Check]:
    """Finish what a killed colabssh run left and bring the Host blocks, pins and sessions into agreement
    (repair.py); one row per disagreement found, with what was done about it."""
    from .sshconfig.repair import repair

    name = "colabssh files"
    try:
        repairs = repair(paths)
    except ColabsshError as exc:
        return [Check(name, FAIL, exc.message, exc.hint)]
    if not repairs:
        return [Check(name, OK, "Host blocks, pinned keys and sessions agree")]
    return [Check(name, WARN, f"found: {fixed.problem}; repaired: {fixed.done}",
                  fixed.next_step or "nothing more to do") for fixed in repairs]


def plain_ssh_check(paths: Paths, sessions: dict[str, Session]) -> Check:
    """Whether a plain `ssh ALIAS` (and VS Code) reads the config colabssh wrote (openssh_home.py)."""
    from .sshconfig.openssh_home import config_openssh_reads, plain_ssh_problem

    alias = sorted(sessions)[0]
    problem = plain_ssh_problem(paths, alias)
    if problem is not None:
        return Check("plain ssh", FAIL, problem.message, problem.hint)
    reads = config_openssh_reads()
    return Check("plain ssh", OK, f"OpenSSH and VS Code read {reads or paths.user_config}, which has the sessions")


# ---- each session --------------------------------------------------------------------------------------------


def effective_check(paths: Paths, alias: str, written: dict[str, str]) -> Check:
    name = f"ssh -G {alias}"
    try:
        wrong = written_mismatches(paths, alias, written)
    except ColabsshError as exc:
        return Check(name, FAIL, exc.message, exc.hint)
    if wrong:
        return Check(name, FAIL, "; ".join(wrong), f"a setting in {paths.user_config} above colabssh's block (or in "
                     f"a file it includes) wins for '{alias}': remove it or scope it to other hosts")
    return Check(name, OK, f"colabssh's {len(written)} settings win")


def install_hint(tool: str) -> str:
    if tool == "cloudflared":
        return f"install cloudflared ({CLOUDFLARED_URL}), then run `colabssh connect CODE` again"
    if tool == "colab":
        from .remote.advice import INSTALL_HINT

        return INSTALL_HINT
    return f"install {tool}, then connect again"


def _colab_check(name: str, program: str) -> Check:
    """Google's `colab`: its version from `colab version` (it has no --version), and whether it has `ssh`."""
    from .remote.advice import has_proxy_mode
    from .remote.colab_log import colab_version

    version = colab_version(program)
    if version is not None and has_proxy_mode(version) is False:
        return Check(name, FAIL, f"{program} is google-colab-cli {version}, which has no `colab ssh --proxy-mode`",
                     "pip install -U google-colab-cli (0.7 or newer; Python 3.12 or newer)")
    return Check(name, OK, f"{program} (google-colab-cli {version or 'version unknown'})")


def proxy_check(alias: str, written: dict[str, str]) -> Optional[Check]:
    """Whether the program the session's ProxyCommand runs (cloudflared, Google's colab) is there."""
    proxy = written.get("proxycommand", "")
    args = text.split_args(proxy)
    if not args or proxy.lower() == "none":
        return None
    program = args[0]
    tool = re.split(r"[/\\]", program)[-1].removesuffix(".exe")
    name = f"{tool} ({alias})"
    if os.path.isfile(program) and os.access(program, os.X_OK):
        if tool == "colab":
            return _colab_check(name, program)
        try:
            done = subprocess.run([program, "--version"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  errors="replace", timeout=15)
            version = (done.stdout.strip().splitlines() or ["version unknown"])[0]
        except (OSError, subprocess.TimeoutExpired):
            version = "version unknown"
        return Check(name, OK, f"{program} ({version})")
    found = shutil.which(tool)
    if found:
        return Check(name, FAIL, f"the session's ProxyCommand runs {program}, which is not there",
                     f"run the session's `colabssh connect` again: it writes the ProxyCommand with {found}")
    return Check(name, FAIL, f"{tool} is not installed here (the session's ProxyCommand runs {program})",
                 install_hint(tool))


def colab_runtime_gone(paths: Paths, session: Session) -> Optional[Check]:
    """For a `--via colab-cli` session with no open shared connection: a WARN when `colab sessions` does not list
    its runtime (an ssh now would make colab create a new, billable one: doctor never does that); else None."""
    from .remote.runner import shared_connection_alive

    if session.tunnel != Transport.COLAB_CLI or shared_connection_alive(paths, session.alias):
        return None
    name = session.colab_session
    colab = str(session.extra.get("colab") or shutil.which("colab") or "colab")
    try:
        listed = subprocess.run([colab, "sessions"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                errors="replace", timeout=COLAB_LIST_TIMEOUT, start_new_session=True).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None  # proxy_check says what is wrong with colab itself
    if any(line.startswith(f"[{name}] ") for line in listed.splitlines()):
        return None
    return Check(f"reach {session.alias}", WARN, f"`colab sessions` does not list a runtime of colab session "
                 f"'{name}': it has stopped or expired (doctor does not connect: colab would create a new, billable "
                 "runtime)", f"`colabssh connect --via colab-cli --session {name} --name {session.alias}` starts a "
                 f"new one, or `colabssh forget {session.alias}`")


def reach_check(paths: Paths, session: Session) -> Check:
    """``ssh -o ConnectTimeout=N ALIAS true`` through the remote seam's argv (its config, BatchMode).

    A `--via colab-cli` session gets no ConnectTimeout: when it ran out, ssh would end colab's ProxyCommand,
    and a colab that is still starting is not to be cut off (``colab_runtime_gone`` has ruled out a creation)."""
    name = f"reach {session.alias}"
    remote = Remote(session, paths)
    via_colab = session.tunnel == Transport.COLAB_CLI
    timeout = REACH_TIMEOUT + (COLAB_LIST_TIMEOUT if via_colab else 20)
    argv = remote.ssh_argv("true", options=() if via_colab else ("-o", f"ConnectTimeout={REACH_TIMEOUT}"))
    started = time.monotonic()
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return Check(name, FAIL, f"{session.alias}: the runtime did not answer within {timeout} s",
                     "the tunnel may be down: re-run the cell in Colab, then `colabssh connect` the new code")
    except OSError as exc:
        return Check(name, FAIL, f"ssh did not run: {exc.strerror}", "reinstall OpenSSH's client")
    seconds = time.monotonic() - started
    if done.returncode == 0:
        return Check(name, OK, f"ssh {session.alias} true: logged in at {session.address} in {seconds:.1f} s")
    if session.auth == Login.PASSWORD and done.returncode == 255 and "Permission denied" in done.stderr:
        return Check(name, OK, f"{session.address} answers (it asks for the password colab-ssh set)")
    error = explain_ssh_failure(session.alias, done.returncode, done.stderr)
    return Check(name, FAIL, error.message, error.hint)


def session_checks(paths: Paths, session: Session, ssh: Optional[str], report: Report) -> list[Check]:
    written = written_options(paths, session.alias)
    if written is None:
        return [Check(f"ssh -G {session.alias}", FAIL, f"{paths.config} has no Host block for '{session.alias}'",
                      f"run `colabssh connect CODE --name {session.alias}` again, or `colabssh forget "
                      f"{session.alias}`")]
    if ssh is None:
        return [Check(f"ssh -G {session.alias}", SKIP, "no usable ssh client (see above)")]
    checks = [effective_check(paths, session.alias, written)]
    proxy = proxy_check(session.alias, written)
    if proxy is not None:
        checks.append(proxy)
    gone = colab_runtime_gone(paths, session)
    if gone is not None:
        return checks + [gone]
    report(f"doctor: ssh {session.alias} true ...")
    checks.append(reach_check(paths, session))
    return checks


# ---- the editor ----------------------------------------------------------------------------------------------


def editor_checks() -> list[Check]:
    found = [(spec, cli) for spec in EDITORS.values() if (cli := shutil.which(spec.cli))]
    if not found:
        return [Check("editor", WARN, f"no editor CLI on PATH ({', '.join(EDITORS)}): `colabssh connect` prints "
                      "the command and a link to open instead",
                      "VS Code: Command Palette > 'Shell Command: Install code command in PATH'")]
    checks = []
    for spec, cli in found:
        extensions = installed_extensions(cli)
        name = f"editor {spec.name}"
        if extensions is None:
            checks.append(Check(name, OK, f"{cli} (it could not list its extensions: Remote-SSH not checked)"))
        elif not extensions.intersection(spec.remote_ssh):
            checks.append(Check(name, WARN, f"{cli} has no Remote-SSH extension: it cannot open a session",
                                f"{spec.cli} --install-extension {spec.install_id}"))
        else:
            remote_ssh = sorted(extensions.intersection(spec.remote_ssh))[0]
            checks.append(Check(name, OK, f"{cli} with {remote_ssh}"))
    return checks


# ---- all of it -----------------------------------------------------------------------------------------------


def run_doctor(paths: Optional[Paths] = None, report: Report = lambda line: None) -> DoctorReport:
    paths = paths or Paths.from_env()
    doctor = DoctorReport()
    client, ssh = ssh_client_check()
    doctor.checks.append(client)
    doctor.checks += agreement_checks(paths)
    listed, sessions = sessions_check(paths)
    doctor.checks += [key_check(paths, sessions), config_check(paths, sessions), listed]
    if sessions:
        doctor.checks.append(plain_ssh_check(paths, sessions))
    for session in sessions.values():
        doctor.checks += session_checks(paths, session, ssh, report)
    doctor.checks += editor_checks()
    return doctor
