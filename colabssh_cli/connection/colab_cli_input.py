"""What `colabssh connect --via colab-cli` reads and writes for Google's `colab` CLI: the options (--via, --session,
--gpu), the absolute path of `colab`, and the ProxyCommand that runs it (connection/colab_cli.py connects).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

from ..errors import BAD_INPUT, MISSING_TOOL, ColabsshError
from ..remote.advice import INSTALL_HINT
from ..session import NAME_PATTERN, Transport
from ..sshconfig.render import proxy_path_is_safe

GPUS = ("T4", "L4", "G4", "A100", "H100")
HOSTNAME_SUFFIX = ".colab-cli.invalid"


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


def check_transport_arguments(via: Optional[str], *, session: Optional[str], gpu: Optional[str],
                              code_options: list[str]) -> bool:
    """True for `--via colab-cli`; refuse options that belong to a code's transports (CODE_OPTIONS: their names)."""
    if via is None:
        if session is not None or gpu is not None:
            raise ColabsshError("--session and --gpu belong to `--via colab-cli`",
                                "colabssh connect --via colab-cli --session NAME [--gpu T4]", BAD_INPUT)
        return False
    if via != Transport.COLAB_CLI.value:
        raise ColabsshError(f"unknown road {via!r} for --via", "the one road besides a connection code is "
                            "`--via colab-cli` (Google's `colab ssh --proxy-mode`)", BAD_INPUT)
    if code_options:
        raise ColabsshError(f"{', '.join(code_options)} cannot be combined with --via colab-cli",
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
