"""Render the one Python cell that turns a Colab runtime into an SSH host.

The cell's first lines are for people: what it does, the secrets it reads, how to stop it, and its options
(COLABSSH_OPTIONS). Then it carries the ``colab_bootstrap`` package (it imports only the standard library at
module level) as one payload: the laptop's own bundle (``pack.Bundle.of_package``, comments and docstrings
blanked) compressed with bz2 and written in base85, whose alphabet has no quote and no backslash, in lines of
``PAYLOAD_WIDTH`` characters. That keeps the cell under ``MAX_CELL_BYTES`` (Colab and browsers choke on huge
pastes; the whole sources were 290 KB). The cell unpacks it, installs colabssh's one importer over it
(``colab_bootstrap.ship``, which also caches the bundle on the runtime under the hash the laptop's commands ask
for), and calls ``colab_bootstrap.runtime.main`` with its options. The same text runs as ``python3 cell.py`` on
any Linux machine with sshd.
"""

from __future__ import annotations

import base64
import bz2
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


MAX_CELL_BYTES = 80_000  # the most a cell may weigh (UTF-8): tests/cli/test_cell.py holds both cells to it
PAYLOAD_WIDTH = 1000  # characters of base85 per line of the payload
PAYLOAD_START = "_COLABSSH_CODE = ("  # the line where the payload starts, after the options
NO_MODULE = ("colabssh: this python ({1}) has no {0} module, which the cell needs to unpack itself: use a python "
             "built with it (Colab's has it; with pyenv, install libbz2-dev first)")
DAMAGED = "colabssh: this cell's code is damaged (cut short when pasted?): make it again with `colabssh bootstrap`"


def payload_literal(data: bytes) -> list[str]:
    """The lines that give ``_COLABSSH_CODE`` a bundle's DATA: bz2 (the smallest of the standard library's for
    it), then base85, one string literal a line inside parentheses, so no line of it starts anything IPython
    would rewrite (``%``, ``!``) and no editor meets one string of 70,000 characters."""
    text = base64.b85encode(bz2.compress(data, 9)).decode("ascii")
    return [PAYLOAD_START, *(f'"{text[i:i + PAYLOAD_WIDTH]}"' for i in range(0, len(text), PAYLOAD_WIDTH)), ")"]


def payload_lines() -> list[str]:
    """What follows COLABSSH_OPTIONS in every cell (the pasted one and the notebook's form cell): the package as
    one compressed payload (the laptop's own bundle), the one importer, and the call of ``runtime.main``."""
    data = pack.Bundle.of_package().data
    lines = ["", "# colabssh's runtime code: the colab_bootstrap package, bz2-compressed, in base85.",
             *payload_literal(data),
             "import sys as _sys",
             "try:",
             "    import base64 as _base64, bz2 as _bz2, json as _json",
             "except ImportError as _colabssh_missing:  # a python built without libbz2 (pyenv without libbz2-dev)",
             f"    raise SystemExit({json.dumps(NO_MODULE)}.format(_colabssh_missing.name, _sys.executable)) from None",
             "try:",
             "    _colabssh_bundle = _bz2.decompress(_base64.b85decode(_COLABSSH_CODE))",
             "    _colabssh_ship = {\"__name__\": \"colab_bootstrap.ship\"}",
             "    exec(compile(_json.loads(_colabssh_bundle)[\"modules\"][\"colab_bootstrap.ship\"],",
             "                 \"<colabssh:colab_bootstrap.ship>\", \"exec\"), _colabssh_ship)",
             "except Exception:",
             f"    raise SystemExit({json.dumps(DAMAGED)}) from None",
             "# The one importer of colabssh serves the package from the payload; when the cell runs, it caches",
             "# the payload on the runtime, so `colabssh sync` and `demo` find it there.",
             "_colabssh_ship[\"install\"](*_colabssh_ship[\"decode\"](_colabssh_bundle))",
             "from colab_bootstrap.runtime import main as _colabssh_main",
             "from colab_bootstrap.runtime import stop_serving as colabssh_stop  # in a notebook: ends SSH access",
             "",
             "_colabssh_status = _colabssh_main(COLABSSH_OPTIONS)",
             "if _colabssh_status and \"ipykernel\" not in _sys.modules:  # run as a script",
             "    raise SystemExit(_colabssh_status)", ""]
    return lines


def carried_bundle(cell_text: str) -> bytes:
    """The bundle bytes a cell's payload holds (what the cell caches on the runtime); ValueError when it has none."""
    import ast

    for node in ast.parse(cell_text).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_COLABSSH_CODE":
            return bz2.decompress(base64.b85decode(ast.literal_eval(node.value)))
    raise ValueError("no colabssh payload in this cell")


SECRETS_LINE = "# Secrets it reads: NGROK_AUTHTOKEN (ngrok tunnels), COLABSSH_PUBKEY (when no key is embedded)."
STOP_LINE = "# To stop it: `colabssh_stop()` in another cell of the notebook (run as a script: Ctrl-C)."
OPTIONS_LINE = "# Its options, yours to edit (`colabssh bootstrap --help` explains each):"


def render_cell(tunnel: str, public_key: str, sync_every: int = 0, *, restore: bool = True,
                fresh_host_key: bool = False) -> str:
    options = cell_options(tunnel, public_key, sync_every, restore, fresh_host_key)
    lines = [
        f"# colabssh {colab_bootstrap.__version__}: paste this into a Colab cell (GPU runtime) and run it.",
        "# It mounts Drive, starts a key-only sshd on 127.0.0.1, opens the tunnel and prints",
        "# `colabssh connect CODE` for your laptop. Colab's terms allow SSH only on paid runtimes.",
        SECRETS_LINE,
        STOP_LINE,
        OPTIONS_LINE,
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
