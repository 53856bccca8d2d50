"""Which ``~/.ssh/config`` plain OpenSSH reads, and whether it is the one colabssh wrote.

colabssh takes ``~`` from ``$HOME`` and passes ``-F $HOME/.ssh/config`` to every ssh it runs, so its own
commands always see its sessions. OpenSSH itself (a plain ``ssh colab``, and VS Code's Remote-SSH, which runs
ssh without ``-F`` unless ``remote.SSH.configFile`` is set) finds ``~`` through the password database instead.
When ``HOME`` points elsewhere (``sudo -E``, some CI and container set-ups) the two differ, and a session that
colabssh checked does not exist for plain ssh. ``plain_ssh_problem`` says so, with what to do.

``COLABSSH_OPENSSH_HOME`` names the home folder that the OpenSSH you use reads (default: your entry in the
password database). The test suite and `colabssh try` set it to their sandbox HOME, where every ssh is given -F.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from ..errors import ColabsshError
from ..paths import Paths
from . import text

ENV = "COLABSSH_OPENSSH_HOME"


def openssh_home(environ: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """The home folder OpenSSH expands ``~`` to (None where it cannot be told, e.g. on Windows)."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV):
        return Path(environ[ENV]).absolute()
    try:
        import pwd
    except ImportError:  # Windows: OpenSSH for Windows takes %USERPROFILE%, which colabssh's HOME follows
        return None
    try:
        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        return None


def config_openssh_reads(environ: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    home = openssh_home(environ)
    return None if home is None else home / ".ssh" / "config"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _includes(config: Path, wanted: tuple[Path, ...]) -> bool:
    """Whether CONFIG has an ``Include`` line (outside Host/Match blocks) naming one of WANTED."""
    try:
        lines = text.split_lines(config.read_bytes())
    except OSError:
        return False
    names = {p.as_posix() for p in wanted}
    for line in lines:
        parsed = text.keyword_and_rest(line)
        if parsed is None:
            continue
        if parsed[0] in ("host", "match"):
            return False  # an Include below a Host line applies to that host only
        if parsed[0] == "include" and names.intersection(text.split_args(parsed[1])):
            return True
    return False


def plain_ssh_problem(paths: Paths, alias: str = "ALIAS",
                      environ: Optional[Mapping[str, str]] = None) -> Optional[ColabsshError]:
    """None when a plain ``ssh ALIAS`` reads the config colabssh wrote (or one that includes it); else what is
    wrong and what to do, as an error the caller may show as a warning or a failed check."""
    theirs = config_openssh_reads(environ)
    ours = paths.user_config
    if theirs is None or _same_file(theirs, ours) or theirs == ours:
        return None
    if _includes(theirs, (paths.config, ours)):
        return None
    home = theirs.parent.parent
    return ColabsshError(
        f"plain `ssh {alias}` and VS Code do not see this session: OpenSSH reads {theirs} (the home folder of "
        f"your user in the password database), while HOME is {paths.home} and colabssh wrote {ours}",
        f"add the line `Include {paths.config}` at the top of {theirs}, or run colabssh with HOME={home}; "
        f"for VS Code alone, set its setting remote.SSH.configFile to {ours}")
