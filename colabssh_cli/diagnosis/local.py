"""`colabssh doctor`'s checks of this machine: OpenSSH's client and its version, colabssh's key and its modes,
the marker block, its Include line and the file modes ssh insists on in ``~/.ssh/config``, the session list,
the agreement of colabssh's own files, and whether a plain `ssh ALIAS` reads them.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path
from typing import Optional

from colab_bootstrap import conncode
from colab_bootstrap.units import count

from ..errors import ColabsshError
from ..paths import Paths
from ..remote import process
from ..session import Session, load_sessions
from ..sshconfig import text
from ..sshconfig.render import BEGIN_MARKER, END_MARKER
from .report import FAIL, OK, SKIP, WARN, Check

MIN_OPENSSH = (7, 3)  # the Include line colabssh puts in ~/.ssh/config (and `ssh -G` showing ProxyJump)
TESTED_OPENSSH = (8, 0)  # the oldest client the tests' assumptions are known to hold for
NEEDS = ("colabssh needs OpenSSH 7.3+ (Include in ~/.ssh/config, ssh -G); ed25519 keys need 6.5+; "
         "connection sharing (ControlMaster) needs Unix sockets, so it is off with Windows' OpenSSH")
MARKER_FIX = ("keep exactly one colabssh block (start and end marker lines, in that order) or delete both marker "
              "lines and what is between them, then run `colabssh connect CODE` again")


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
        done = process.run([ssh, "-V"], timeout=15)
    except (OSError, process.TimedOut) as exc:
        why = "TimeoutExpired" if isinstance(exc, process.TimedOut) else type(exc).__name__  # as it always said
        return Check("ssh client", FAIL, f"{ssh} -V did not run ({why})",
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
        done = process.run([keygen, "-y", "-f", str(key)], timeout=15)
    except (OSError, process.TimedOut):
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
        settings = count(len(above), "setting line")
        return Check("ssh config", WARN, f"Include {paths.config} at {where}, below {settings} "
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
    from ..sshconfig.repair import repair

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
    from ..sshconfig.openssh_home import config_openssh_reads, plain_ssh_problem

    alias = sorted(sessions)[0]
    problem = plain_ssh_problem(paths, alias)
    if problem is not None:
        return Check("plain ssh", FAIL, problem.message, problem.hint)
    reads = config_openssh_reads()
    return Check("plain ssh", OK, f"OpenSSH and VS Code read {reads or paths.user_config}, which has the sessions")
