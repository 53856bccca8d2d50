"""colab's own failures, as colabssh explains them: the stderr of Google's `colab ssh --proxy-mode`, and the
log where each `--via colab-cli` session's ProxyCommand keeps it.

A small module of its own so that the remote seam (remote.py) and `forget` (connect.py) can read colab's
explanations without importing the colab-cli road (colab_cli.py), which itself builds on connect.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

from .errors import BAD_INPUT, MISSING_TOOL, UNREACHABLE, ColabsshError
from .paths import Paths
from .sessions import load_sessions
from .sshconfig_files import remove_file

ROAD = "colab-cli"  # the tunnel of a session reached through `colab ssh --proxy-mode`
INSTALL_HINT = ("install Google's Colab CLI: `pip install google-colab-cli` (Python 3.12 or newer; Linux or macOS, "
                "not Windows), run `colab sessions` once to log in, then connect again")
LOGIN_PROMPT = re.compile(r"accounts\.google\.com|authorization code|Enter the code", re.IGNORECASE)


# ---- the log of colab's stderr ---------------------------------------------------------------------------


def log_path(paths: Paths, alias: str) -> Path:
    """Where the alias's ProxyCommand writes colab's stderr (each connection attempt starts it afresh).

    OpenSSH sends a ProxyCommand's stderr to /dev/null when ControlPersist is on, so without this file colab's
    own explanation of a failure (404, 429, ...) would be lost to colabssh and to the user alike.
    """
    return paths.root / f"colab-{alias}.log"


# ---- colab's errors ---------------------------------------------------------------------------------------


def _has(text: str, *needles: str) -> bool:
    lowered = text.lower()
    return any(needle.lower() in lowered for needle in needles)


def explain_colab_stderr(text: str, session: str) -> Optional[ColabsshError]:
    """colab's own failure (its stderr), as one line and its fix; None when TEXT holds none colabssh knows."""
    s = session
    retry = f"colabssh connect --via colab-cli --session {s}"
    if _has(text, "No such command 'ssh'", "No such option: --proxy-mode", "No such option: -i"):
        return ColabsshError("this `colab` has no `colab ssh --proxy-mode` (google-colab-cli before 0.7)",
                             "upgrade it: `pip install -U google-colab-cli`, then connect again", MISSING_TOOL)
    if _has(text, "HTTP 429", "another `colab ssh` is connected"):
        return ColabsshError(f"the runtime of colab session '{s}' is taken by another SSH connection (HTTP 429: "
                             "Colab allows one per runtime)",
                             "close the other one (a VS Code window, a `colab ssh`, or another machine), then try "
                             "again; ssh, VS Code and colabssh share one connection through the alias", UNREACHABLE)
    if _has(text, "HTTP 404", "/colab/ssh endpoint", "SSH not exposed"):
        return ColabsshError(f"the runtime of colab session '{s}' has no SSH (HTTP 404)",
                             f"SSH is baked in at creation, so run `colab new`: `colab stop -s {s}`, then `{retry}` "
                             "creates a new runtime with SSH", UNREACHABLE)
    if _has(text, "unsupported key type", "RSA keys"):
        return ColabsshError("Colab refused the SSH key: RSA keys are not accepted (HTTP 400; only ssh-ed25519 "
                             "and ecdsa)",
                             "use an ed25519 key: colabssh's own, which connect passes to colab with -i, or one "
                             "from `ssh-keygen -t ed25519`; remove any -i or IdentityFile naming an RSA key",
                             BAD_INPUT)
    if _has(text, "HTTP 400", "missing pubkey"):
        return ColabsshError("Colab refused the SSH key that colab sent (HTTP 400)",
                             f"check it with `ssh-keygen -y -f KEY`; `{retry}` passes colabssh's own ed25519 key",
                             BAD_INPUT)
    if _has(text, "HTTP 401"):
        return ColabsshError(f"Colab no longer accepts the token of colab session '{s}' (HTTP 401)",
                             f"the session may have expired: see `colab sessions`; `colab stop -s {s}` and `{retry}` "
                             "start a new runtime", UNREACHABLE)
    if _has(text, "HTTP 403"):
        return ColabsshError(f"Colab refused SSH to colab session '{s}' (HTTP 403)",
                             "check the account (`colab usage`): SSH on Colab needs a paid plan or compute units",
                             UNREACHABLE)
    if _has(text, "HTTP 502"):
        return ColabsshError(f"the runtime of colab session '{s}' is up, but its sshd does not answer (HTTP 502)",
                             f"see `colab status -s {s}`; if it stays so, `colab stop -s {s}` and `{retry}` start a "
                             "new runtime", UNREACHABLE)
    if _has(text, "no SSH public key found", "file not found.", "failed to derive public key"):
        return ColabsshError("colab could not read the SSH key colabssh gave it",
                             f"`{retry}` makes colabssh's key again and passes it with -i", BAD_INPUT)
    if _has(text, "WebSocket connection failed", "WebSocket upgrade failed"):
        return ColabsshError("colab could not reach Colab (its WebSocket connection failed)",
                             "check this machine's network, then try again", UNREACHABLE)
    if re.search(r"session '[^']*' not found", text):
        return ColabsshError(f"colab knows no session '{s}'", "see `colab sessions`", UNREACHABLE)
    if LOGIN_PROMPT.search(text):
        return ColabsshError("colab wants you to log in to Google first",
                             "run `colab sessions` once in a terminal (it asks for the login), then connect again",
                             UNREACHABLE)
    return None


def _colab_gone(text: str) -> bool:
    """The shell that runs the ProxyCommand could not run colab (dash: "exec: /x/colab: not found")."""
    return bool(re.search(r"/colab: (not found|No such file or directory|Permission denied)", text))


def last_colab_output(paths: Paths, alias: str, limit: int = 8192) -> str:
    """What colab wrote to stderr in the alias's latest connection attempt (its log's tail; '' if none)."""
    try:
        with open(log_path(paths, alias), "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(handle.tell() - limit, 0))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def drop_log(paths: Paths, alias: str) -> bool:
    """Remove the alias's colab log (forget); True when there was one."""
    return remove_file(log_path(paths, alias))


def explain_ssh_stderr(alias: str, stderr: str, paths: Optional[Paths] = None) -> Optional[ColabsshError]:
    """ssh's failure (exit 255) for a colab-cli session, or one whose stderr has colab's lines; else None.

    Read with colab's own stderr from the alias's log (OpenSSH discards it under ControlPersist)."""
    paths = paths or Paths.from_env()
    try:
        session = load_sessions(paths).get(alias)
    except ColabsshError:
        session = None
    road = session is not None and session.tunnel == ROAD
    text = stderr + ("\n" + last_colab_output(paths, alias) if road or log_path(paths, alias).exists() else "")
    road = road or "[colab] " in text
    if not road:
        return None
    name = str(session.extra.get("session", alias)) if session is not None and session.tunnel == ROAD else alias
    retry = f"colabssh connect --via colab-cli --session {name} --name {alias}"
    known = explain_colab_stderr(text, name)
    if known is not None:
        known.message = f"{alias}: {known.message}"
        return known
    if _colab_gone(text):
        return ColabsshError(f"{alias}: the `colab` CLI that this session's ProxyCommand runs is gone",
                             "install it again (`pip install google-colab-cli`: Python 3.12 or newer, Linux or "
                             f"macOS), then `{retry}` writes its new path", MISSING_TOOL)
    if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return ColabsshError(f"{alias}: the runtime behind colab session '{name}' shows another host key than the "
                             "one pinned (a new runtime?)",
                             f"if you made a new runtime (colab new/stop, or it expired), pin its key with `{retry}`; "
                             "if not, do not connect", UNREACHABLE)
    if "Permission denied" in text:
        return ColabsshError(f"{alias}: the runtime behind colab session '{name}' refused colabssh's key",
                             f"colab hands the runtime the key given with -i: `{retry}` writes the ProxyCommand with "
                             "colabssh's key again", UNREACHABLE)
    lines = [line for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else "ssh failed"
    return ColabsshError(f"{alias}: the runtime did not answer through `colab ssh` ({last})",
                         f"`colab status -s {name}` says whether it still runs; then `{retry}`", UNREACHABLE)
