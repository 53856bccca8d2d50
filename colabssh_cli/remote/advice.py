"""colab's own failures, as colabssh explains them: the stderr of Google's `colab ssh --proxy-mode` (and what
ssh said with it), each turned into one ColabsshError with its fix.

Pure functions of what the processes said: nothing here reads a file or starts a program. The callers read
colab's log and the session record (remote/colab_log.py) and pass them in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..errors import BAD_INPUT, MISSING_TOOL, UNREACHABLE, ColabsshError
from ..session import Session, Transport

INSTALL_HINT = ("install Google's Colab CLI: `pip install google-colab-cli` (Python 3.12 or newer; Linux or macOS, "
                "not Windows), run `colab sessions` once to log in, then connect again")
LOGIN_PROMPT = re.compile(r"accounts\.google\.com|authorization code|Enter the code", re.IGNORECASE)
SSH_SINCE = (0, 7)  # google-colab-cli's first version with `colab ssh --proxy-mode`
# What colab prints (stderr) when `colab ssh --proxy-mode -s NAME` finds no NAME in its own store and makes the
# runtime (commands/ssh.py _auto_create_session), and when that runtime is assigned and stored under NAME, so that
# `colab stop -s NAME` can stop it (commands/session.py new).
CREATING = "[colab] Creating runtime '{session}'..."
READY = "[colab] Session READY."


# ---- colab's own words: its rich boxes, its tracebacks, its "[colab] " lines ------------------------------

_BOX_TOP, _BOX_SIDE, _BOX_BOTTOM = "╭", "│", "╰"


@dataclass(frozen=True)
class _Box:
    title: str  # "Error", "Traceback (most recent call last)"
    first: int  # the index of its top line
    last: int  # the index of its bottom line
    text: str  # its rows as one line


def _box_text(rows: list[str]) -> str:
    """A rich box's rows ("│ text   │") as one line: a row whose text fills it to the border was broken inside a
    word (joined without a space), any other one between words."""
    text, broken = "", False
    for row in rows:
        inner = row[1:-1] if row.endswith(_BOX_SIDE) else row[1:]
        content = inner.strip()
        text = content if not text else text + ("" if broken else " ") + content
        broken = len(content) >= len(inner) - 2  # one space of padding on each side
    return text


def _boxes(lines: list[str]) -> list[_Box]:
    found: list[_Box] = []
    rows: list[str] = []
    top = -1
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(_BOX_TOP):
            top, rows = index, []
        elif top >= 0 and stripped.startswith(_BOX_SIDE):
            rows.append(stripped)
        elif top >= 0 and stripped.startswith(_BOX_BOTTOM):
            found.append(_Box(lines[top].strip().strip("╭╮─ "), top, index, _box_text(rows)))
            top = -1
        else:
            top = -1
    return found


def unbox(text: str) -> str:
    """TEXT with each of rich's boxes made one plain line ("Error: No such option: --version").

    The real `colab` draws click's usage errors in a box (╭─ Error ─╮ / │ No such option: --version │ / ╰─╯), 80
    columns wide when stderr is not a terminal, so a longer message is wrapped over several rows; a crash is a
    box of source lines (typer's pretty traceback) with the exception after it."""
    lines = text.splitlines()
    out: list[str] = []
    done = 0
    for box in _boxes(lines):
        out += lines[done:box.first]
        out.append(box.title if box.title.startswith("Traceback") else f"{box.title}: {box.text}")
        done = box.last + 1
    return "\n".join(out + lines[done:])


def colab_message(text: str) -> str:
    """The one message in colab's stderr TEXT: its usage error's box, its crash's exception, else its last line of
    its own ("[colab] ..."), else its last line; '' when it said nothing."""
    lines = text.splitlines()
    boxes = _boxes(lines)
    if boxes:
        last = boxes[-1]
        after = "".join(lines[last.last + 1:]).strip()  # rich wraps the exception keeping the spaces it breaks at
        if last.title.startswith("Traceback") and after:
            return " ".join(after.split())
        if not last.title.startswith("Traceback") and not after:
            return last.text
    plain = [line.strip() for line in unbox(text).splitlines() if line.strip()]
    own = [line for line in plain if line.startswith("[colab] ")]
    if own:
        return own[-1].removeprefix("[colab] ")
    return plain[-1] if plain else ""


def has_proxy_mode(version: str) -> Optional[bool]:
    """Whether google-colab-cli VERSION has `colab ssh --proxy-mode`; None for a version colabssh cannot read."""
    parts = re.match(r"(\d+)\.(\d+)", version)
    return None if parts is None else (int(parts.group(1)), int(parts.group(2))) >= SSH_SINCE


# ---- colab's errors ---------------------------------------------------------------------------------------


def _has(text: str, *needles: str) -> bool:
    lowered = text.lower()
    return any(needle.lower() in lowered for needle in needles)


def explain_colab_stderr(text: str, session: str) -> Optional[ColabsshError]:
    """colab's own failure (its stderr), as one line and its fix; None when TEXT holds none colabssh knows."""
    text = unbox(text)  # a usage error wrapped over a box's rows reads as one line
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
    if _has(text, "NameResolutionError", "Max retries exceeded", "ConnectionError:", "ConnectTimeout"):
        return ColabsshError("colab could not reach Colab (colab.research.google.com)",
                             "check this machine's network, then try again", UNREACHABLE)
    if _has(text, "Allocation refused"):
        return ColabsshError(f"Colab refused to create a runtime for colab session '{s}' (too many active "
                             "sessions, or a usage or capacity limit)",
                             "`colab sessions` lists your runtimes and `colab stop -s NAME` ends one; or wait and "
                             "retry, or try another --gpu", UNREACHABLE)
    rejected = re.search(r"Backend rejected accelerator '([^']*)'", text)
    if rejected:
        return ColabsshError(f"Colab refused the accelerator {rejected.group(1)} for this account (no quota or "
                             "entitlement)",
                             f"try another --gpu, or none for a CPU runtime: `{retry} --gpu T4`",
                             BAD_INPUT)
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


# The lines OpenSSH prints about a host key that is not the pinned one: colabssh says what that means (and what to
# do: never `ssh-keygen -R`, which would drop the pin) in its own words, so these are not handed on as progress.
_HOST_KEY_BANNER = ("@", "IT IS POSSIBLE THAT SOMEONE", "Someone could be", "It is also possible that",
                    "The fingerprint for the", "Please contact your system", "Add correct host key",
                    "Offending ", "  remove with:", "remove with:", "Host key for ", "Host key verification failed",
                    "ECDSA host key for", "ED25519 host key for", "RSA host key for", "SHA256:", "MD5:",
                    "ssh-keygen -f ")


def is_host_key_banner(line: str) -> bool:
    """Whether LINE (one of ssh's stderr lines) is part of OpenSSH's "REMOTE HOST IDENTIFICATION HAS CHANGED" text."""
    return line.strip("\r\n").lstrip().startswith(_HOST_KEY_BANNER) or "REMOTE HOST IDENTIFICATION" in line


def explain_ssh_stderr(alias: str, stderr: str, session: Optional[Session] = None, logged: str = "",
                       shown: bool = False) -> Optional[ColabsshError]:
    """ssh's failure (exit 255) for a colab-cli SESSION, or one whose stderr has colab's lines; else None.

    LOGGED: colab's own stderr from the alias's log (OpenSSH discards it under ControlPersist), read by the
    caller (colab_log.colab_context). SHOWN: the user has seen STDERR already, so its last line is not quoted."""
    via_colab = session is not None and session.tunnel == Transport.COLAB_CLI
    text = stderr + ("\n" + logged if logged else "")
    if not (via_colab or "[colab] " in text):
        return None
    name = session.colab_session if session is not None and via_colab else alias
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
    crashed = colab_message(logged) if _boxes(logged.splitlines()) else ""  # colab's usage error or crash
    last = crashed or ("ssh said why, above" if shown and lines else lines[-1] if lines else "ssh failed")
    return ColabsshError(f"{alias}: the runtime did not answer through `colab ssh` ({last})",
                         f"`colab status -s {name}` says whether it still runs; then `{retry}`", UNREACHABLE)
