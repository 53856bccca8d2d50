"""Hand the kernel's CUDA-related environment to every SSH session.

sshd starts sessions with a clean environment, so CUDA, ``nvidia-smi`` and
Colab's own variables go missing over SSH. The cell's own environment is the
source (values are never baked into the printed cell):

- ``SetEnv`` lines in the dedicated sshd config reach every session
  (``ssh HOST cmd``, VS Code's server, interactive shells);
- login shells run ``/etc/profile``, which resets PATH, so a profile snippet
  sources ``session-env.sh`` from the state folder again afterwards.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from .files import write_atomically, write_private

_CARRIED = re.compile(
    r"PATH|LD_LIBRARY_PATH|LIBRARY_PATH|PYTHONPATH|LANG|LC_ALL|LC_CTYPE|MPLBACKEND|HF_HOME"
    r"|(?:CUDA|NVIDIA|COLAB|NCCL|CUDNN|TF|XLA|TPU|JAX|TORCH|PYTORCH|COLABSSH)_[A-Z0-9_]+"
)
# A name with any of these words in it, in any case, is never handed on: COLAB_JUPYTER_TOKEN (Colab sets it),
# a *_API_KEY or *_AUTH* a notebook exported. No CUDA/NVIDIA/NCCL/CUDNN name Colab sets contains one, so
# none needs an exception (see docs/runtime.md), and a name that does is kept out like any other.
# Also shorter spellings (PASS, PWD, CRED), BEARER, PRIVATE, SIGNING/SIGNATURE, and PAT as a word of its own
# (a personal access token; PATH does not count).
_SECRET = re.compile(r"TOKEN|SECRET|PASS|PWD|COOKIE|CRED|AUTH|KEY|BEARER|PRIVATE|SIGNING|SIGNATURE"
                     r"|(?:^|_)PAT(?:_|$)", re.IGNORECASE)
# A value sshd's SetEnv can carry as one quoted word.
_SETENV_SAFE = re.compile(r'[^"\'\\\x00-\x1f\x7f]*')
ENV_FILE_NAME = "session-env.sh"
PROFILE_SNIPPET_NAME = "colabssh-env.sh"


def looks_secret(name: str) -> bool:
    """True for a variable name that may hold a secret (TOKEN, KEY, COOKIE ... anywhere, any case)."""
    return _SECRET.search(name) is not None


def carried_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables a session needs, without anything whose name looks like a secret."""
    chosen = {name: value for name, value in environ.items() if _CARRIED.fullmatch(name) and not looks_secret(name)}
    return dict(sorted(chosen.items()))


def setenv_lines(env: Mapping[str, str], env_file: Path) -> list[str]:
    """sshd_config ``SetEnv`` lines; values SetEnv cannot quote go only through the env file."""
    words = [f'"COLABSSH_ENV_FILE={env_file}"']
    for name, value in env.items():
        if _SETENV_SAFE.fullmatch(value) and len(value) < 4000:
            words.append(f'"{name}={value}"')
    lines = []
    while words:  # keep each line well under sshd's line limit
        chunk: list[str] = []
        while words and sum(len(w) + 1 for w in chunk) + len(words[0]) < 6000:
            chunk.append(words.pop(0))
        if not chunk:
            chunk.append(words.pop(0))
        lines.append("SetEnv " + " ".join(chunk))
    return lines


def write_env_file(env: Mapping[str, str], path: Path) -> None:
    body = "# written by colabssh: the notebook kernel's environment for SSH sessions\n"
    body += "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
    write_private(path, body)


PROFILE_SNIPPET = """\
# colabssh: give login shells the notebook kernel's environment (CUDA, PATH, COLAB_*).
# Does nothing outside a colabssh SSH session.
if [ -n "${COLABSSH_ENV_FILE:-}" ] && [ -r "$COLABSSH_ENV_FILE" ]; then
    . "$COLABSSH_ENV_FILE"
fi
"""


def snippet_path(profile_d: Path | None) -> Path | None:
    """Where the login-shell snippet goes in profile_d; None when there is no usable folder (then: no snippet)."""
    if profile_d is None or not profile_d.is_dir() or not os.access(profile_d, os.W_OK):
        return None
    return profile_d / PROFILE_SNIPPET_NAME


def is_our_snippet(target: Path) -> bool:
    """True when ``target`` holds exactly the snippet colabssh writes."""
    try:
        return target.read_text(encoding="utf-8", errors="replace") == PROFILE_SNIPPET
    except OSError:
        return False


def install_profile_snippet(profile_d: Path | None) -> Path | None:
    """Write the login-shell snippet into profile_d (idempotent); None when skipped."""
    target = snippet_path(profile_d)
    if target is None:
        return None
    if not is_our_snippet(target):
        write_atomically(target, PROFILE_SNIPPET, 0o644)  # login shells of every user read it
    return target


def remove_profile_snippet(target: Path) -> bool:
    """Remove the snippet if it is exactly ours (an edited or foreign file stays); True when removed."""
    if not is_our_snippet(target):
        return False
    try:
        target.unlink()
    except OSError:  # gone already, or the folder is not ours to change: nothing to undo
        return False
    return True
