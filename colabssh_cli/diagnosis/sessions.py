"""`colabssh doctor`'s checks of each session: what ``ssh -G ALIAS`` makes of the config (colabssh's values must
win), the program its ProxyCommand runs (cloudflared, Google's `colab`) when it has one, and whether the runtime
answers (``ssh -o ConnectTimeout=N ALIAS true`` through the remote seam).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from typing import Optional

from ..errors import ColabsshError
from ..paths import Paths
from ..remote import process
from ..remote.runner import Remote, explain_ssh_failure
from ..session import Login, Session, Transport
from ..sshconfig import text
from ..sshconfig.effective import written_mismatches, written_options
from .report import FAIL, OK, SKIP, WARN, Check, Report

REACH_TIMEOUT = 10  # seconds, ssh's ConnectTimeout for the reachability check
COLAB_LIST_TIMEOUT = 60  # seconds for `colab sessions` (it may refresh a token first)
CLOUDFLARED_URL = "https://developers.cloudflare.com/cloudflare-one/connections/connect-networks/downloads/"


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
        from ..remote.advice import INSTALL_HINT

        return INSTALL_HINT
    return f"install {tool}, then connect again"


def _colab_check(name: str, program: str) -> Check:
    """Google's `colab`: its version from `colab version` (it has no --version), and whether it has `ssh`."""
    from ..remote.advice import has_proxy_mode
    from ..remote.colab_log import colab_version

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
            done = process.run([program, "--version"], timeout=15)
            version = (done.stdout.strip().splitlines() or ["version unknown"])[0]
        except (OSError, process.TimedOut):
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
    from ..remote.runner import shared_connection_alive

    if session.tunnel != Transport.COLAB_CLI or shared_connection_alive(paths, session.alias):
        return None
    name = session.colab_session
    colab = str(session.extra.get("colab") or shutil.which("colab") or "colab")
    try:
        listed = process.run([colab, "sessions"], timeout=COLAB_LIST_TIMEOUT, new_session=True).stdout
    except (OSError, process.TimedOut):
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
        done = process.run(argv, timeout=timeout)
    except process.TimedOut:
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
