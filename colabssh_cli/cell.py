"""Render the one Python cell that turns a Colab runtime into an SSH host.

The cell inlines the ``colab_bootstrap`` package as source (it imports only the
standard library at module level), installs colabssh's one importer for it
(``colab_bootstrap.ship``, which also caches it on the runtime), and calls
``colab_bootstrap.runtime.main`` with the options embedded here. The same text
runs as ``python3 cell.py`` on any Linux machine with sshd.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import colab_bootstrap
from colab_bootstrap import pack
from colab_bootstrap.files import file_kind

from .errors import BAD_INPUT, FAILURE, ColabsshError
from .paths import Paths
from .session import Transport
from .sshconfig.files import atomic_write

TUNNEL_KINDS = tuple(t.value for t in Transport if t != Transport.COLAB_CLI)  # what the cell starts


class Expression:
    """A value that ``python_literal`` writes as Python source, not as data (the notebook's form variables)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __repr__(self) -> str:
        return self.source


def python_literal(options: dict[str, object]) -> str:
    """OPTIONS as a Python dict literal, one key per line (strings as JSON strings, which Python reads alike)."""
    lines = [f"    {json.dumps(key)}: {json.dumps(value) if isinstance(value, str) else repr(value)},"
             for key, value in options.items()]
    return "{\n" + "\n".join(lines) + "\n}"


def cell_options(tunnel: str, public_key: str, sync_every: int, restore: bool, fresh_host_key: bool,
                 ) -> dict[str, object]:
    """The options the cell hands to ``colab_bootstrap.runtime.main`` (its COLABSSH_OPTIONS), in the cell's order."""
    if tunnel not in TUNNEL_KINDS:
        raise ColabsshError(f"unknown tunnel kind {tunnel!r}", f"use one of: {', '.join(TUNNEL_KINDS)}",
                            BAD_INPUT)
    return {"tunnel": tunnel, "public_key": public_key, "sync_every": sync_every, "restore": restore,
            "fresh_host_key": fresh_host_key}


def payload_lines() -> list[str]:
    """What follows COLABSSH_OPTIONS in every cell (the pasted one and the notebook's form cell): the inlined
    ``colab_bootstrap`` sources, the one importer, and the call of ``runtime.main`` with the options."""
    lines = ["", "_COLABSSH_SOURCES = {"]
    modules, packages = pack.collect()
    for name, source in modules.items():
        lines.append(f"    {name!r}: {source!r},")
    lines += ["}", f"_COLABSSH_PACKAGES = {packages!r}", "",
              "# The one importer of colabssh (colab_bootstrap/ship.py) serves the package from the sources above;",
              "# when the cell runs, it caches them on the runtime, so `colabssh sync` and `demo` find them there.",
              "import sys as _sys",
              "_colabssh_ship = {\"__name__\": \"colab_bootstrap.ship\"}",
              "exec(compile(_COLABSSH_SOURCES[\"colab_bootstrap.ship\"], \"<colabssh:colab_bootstrap.ship>\", "
              "\"exec\"), _colabssh_ship)",
              "_colabssh_ship[\"install\"](_COLABSSH_SOURCES, _COLABSSH_PACKAGES)",
              "from colab_bootstrap.runtime import main as _colabssh_main",
              "from colab_bootstrap.runtime import stop_serving as colabssh_stop  # in a notebook: ends SSH access",
              "",
              "_colabssh_status = _colabssh_main(COLABSSH_OPTIONS)",
              "if _colabssh_status and \"ipykernel\" not in _sys.modules:  # run as a script",
              "    raise SystemExit(_colabssh_status)", ""]
    return lines


SECRETS_LINE = "# Secrets it reads: NGROK_AUTHTOKEN (ngrok tunnels), COLABSSH_PUBKEY (when no key is embedded)."


def render_cell(tunnel: str, public_key: str, sync_every: int = 0, *, restore: bool = True,
                fresh_host_key: bool = False) -> str:
    options = cell_options(tunnel, public_key, sync_every, restore, fresh_host_key)
    lines = [
        f"# colabssh {colab_bootstrap.__version__}: paste this into a Colab cell (GPU runtime) and run it.",
        "# It mounts Drive, starts a key-only sshd on 127.0.0.1, opens the tunnel and prints",
        "# `colabssh connect CODE` for your laptop. Colab's terms allow SSH only on paid runtimes.",
        SECRETS_LINE,
        f"COLABSSH_OPTIONS = {python_literal(options)}",
    ]
    return "\n".join(lines + payload_lines())


def public_key_text(public_key: Path | None, paths: Paths) -> str:
    """The key line to authorise: from ``public_key`` (a .pub file), else colabssh's own key (made if missing)."""
    from colab_bootstrap.errors import BootstrapError
    from colab_bootstrap.pubkey import authorised_key_line

    from .remote.keys import ensure_client_key

    if public_key is None:
        text = ensure_client_key(paths)
    else:
        try:
            text = public_key.read_text(encoding="utf-8", errors="strict")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not a text file"
            raise ColabsshError(f"cannot read the public key {public_key}: {reason}",
                                "pass a .pub file, e.g. --public-key ~/.ssh/id_ed25519.pub", BAD_INPUT) from None
    try:
        return authorised_key_line(text)
    except BootstrapError as exc:
        raise ColabsshError(f"{public_key or paths.public_key}: {exc.message}", exc.hint, BAD_INPUT) from None


def check_tunnel(tunnel: str) -> None:
    if tunnel not in TUNNEL_KINDS:
        raise ColabsshError(f"unknown tunnel kind {tunnel!r}", f"use --tunnel {', '.join(TUNNEL_KINDS)}", BAD_INPUT)


def embedded_key(public_key: Path | None, key_from_secret: bool, paths: Paths) -> str:
    """The key line a cell embeds: "" with --key-from-secret (the cell then reads the Colab Secret), else the
    line ``public_key_text`` finds."""
    if key_from_secret:
        if public_key is not None:
            raise ColabsshError("--key-from-secret and --public-key exclude each other",
                                "drop one: a cell either embeds a key or reads the Colab Secret COLABSSH_PUBKEY",
                                BAD_INPUT)
        return ""
    return public_key_text(public_key, paths)


def build_cell(tunnel: str, public_key: Path | None, key_from_secret: bool, sync_every: int, paths: Paths, *,
               restore: bool = True, fresh_host_key: bool = False) -> str:
    """The whole cell text; every input checked before anything is written."""
    check_tunnel(tunnel)
    return render_cell(tunnel, embedded_key(public_key, key_from_secret, paths), sync_every, restore=restore,
                       fresh_host_key=fresh_host_key)


SPECIAL_FILE_HINTS = {"--out": "give a file path, or leave --out out to print the cell",
                      "--notebook": "give a file path such as colabssh.ipynb"}


def refuse_special_file(out: Path, option: str = "--out") -> None:
    """Refuse OUT when it names a device (/dev/null, /dev/stdout), a FIFO or a socket (or a link to one): the
    rename would otherwise replace it by a regular file (as root, /dev/null itself). A missing path, a dangling
    link and a folder pass (a folder then fails as "cannot write")."""
    try:
        info = os.stat(out)
    except OSError:
        return
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise ColabsshError(f"{option} {out} is {file_kind(info.st_mode)}, not a file",
                            SPECIAL_FILE_HINTS.get(option, f"give a file path to {option}"), BAD_INPUT)


def write_atomically(out: Path, text: str, option: str = "--out") -> None:
    """Write ``out`` whole or not at all (temp file in the same folder, fsync, rename); 0644: it holds no secret.

    Only a file (or a link to one) is replaced: ``refuse_special_file`` refuses anything else before anything
    is written. OPTION names the option that gave OUT in the messages (--out, --notebook)."""
    refuse_special_file(out, option)
    try:
        atomic_write(out, text.encode("utf-8"), 0o644)
    except ColabsshError as exc:
        raise ColabsshError(exc.message, f"choose another {option} path",
                            BAD_INPUT if exc.exit_code == BAD_INPUT else FAILURE) from None
