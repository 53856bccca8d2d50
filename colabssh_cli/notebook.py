"""Render the Colab notebook that `colabssh bootstrap --notebook` writes: the cell as a form, to keep in Drive.

A recycled runtime should cost the user one "Run all", not a 70 KB paste. So the same payload as the pasted
cell (``cell.payload_lines``) goes into one *form cell* of a notebook the user uploads once: Colab folds the
code (``#@title ... { display-mode: "form" }``, cell metadata ``cellView: form``) and shows a title, a run
button and the options as form fields. Editing a field makes Colab rewrite that one ``NAME = VALUE  #@param``
line, and COLABSSH_OPTIONS is made from those variables, so the form is the options.

The file is nbformat 4 as Colab itself saves it (minor 0, cell ids in the cells' metadata, the ``colab``
metadata with ``gpuType``, ``accelerator: GPU`` so a fresh runtime of the notebook gets a GPU), and the same
options give the same bytes (fixed cell ids), so writing it again changes nothing that was not asked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import colab_bootstrap

from .cell import (
    SECRETS_LINE,
    STOP_LINE,
    Expression,
    build_cell,
    cell_options,
    check_tunnel,
    embedded_key,
    payload_lines,
    python_literal,
    refuse_special_file,
    write_atomically,
)
from .errors import BAD_INPUT, ColabsshError
from .paths import Paths

NOTEBOOK_SYNC_EVERY = 600  # the comeback restores the last backup: a notebook backs /content up unless told not to
FORM_TUNNELS = ("ngrok", "cloudflared")  # what a user on Colab can pick; "local" only in a notebook made with it
TITLE = "colabssh: reach this runtime over SSH"
INFO_CELL_ID = "colabsshInfo"
FORM_CELL_ID = "colabsshCell"
FORM_FIELDS = ("tunnel", "sync_every", "restore", "fresh_host_key")  # the options the form shows, by variable


def form_field_lines(tunnel: str, sync_every: int, restore: bool, fresh_host_key: bool) -> list[str]:
    """The form's fields in Colab's syntax, one ``NAME = VALUE  #@param ...`` line each (a dropdown for the
    tunnel, an integer box, two checkboxes), each after a ``#@markdown`` line that Colab shows above it."""
    choices = FORM_TUNNELS if tunnel in FORM_TUNNELS else (*FORM_TUNNELS, tunnel)
    return [
        "#@markdown Run this cell (Runtime > Run all): it prints `colabssh connect CODE` for your laptop.",
        "#@markdown **tunnel**: ngrok needs the Colab Secret `NGROK_AUTHTOKEN`; cloudflared needs no account.",
        f"tunnel = {json.dumps(tunnel)}  #@param {json.dumps(list(choices))}",
        "#@markdown **sync_every**: seconds between backups of /content to Drive (0: no backups).",
        f"sync_every = {sync_every}  #@param {{type:\"integer\"}}",
        "#@markdown **restore**: an empty /content comes back from the last backup.",
        f"restore = {restore!r}  #@param {{type:\"boolean\"}}",
        "#@markdown **fresh_host_key**: a host key of this runtime's own, not the one kept on Drive.",
        f"fresh_host_key = {fresh_host_key!r}  #@param {{type:\"boolean\"}}",
    ]


def form_cell_source(tunnel: str, public_key: str, sync_every: int = NOTEBOOK_SYNC_EVERY, *, restore: bool = True,
                     fresh_host_key: bool = False) -> str:
    """The form cell's code: title, fields, COLABSSH_OPTIONS made from the fields' variables, the payload."""
    options = cell_options(tunnel, public_key, sync_every, restore, fresh_host_key)
    from_form = {name: Expression(name) if name in FORM_FIELDS else value for name, value in options.items()}
    lines = [
        f"#@title {TITLE} {{ display-mode: \"form\" }}",
        *form_field_lines(tunnel, sync_every, restore, fresh_host_key),
        "",
        f"# colabssh {colab_bootstrap.__version__}: the cell of `colabssh bootstrap --notebook`; the form above sets"
        " its options.",
        SECRETS_LINE,
        STOP_LINE,
        f"COLABSSH_OPTIONS = {python_literal(from_form)}",
    ]
    return "\n".join(lines + payload_lines())


def about_markdown(key_from_secret: bool) -> str:
    """The notebook's first cell: what the form cell does, the every-day use, and what Colab's terms allow."""
    from colab_bootstrap.runtime import TERMS

    key = ("It authorises the public key in the Colab Secret `COLABSSH_PUBKEY` (add it under Secrets, the key "
           "icon on the left)." if key_from_secret else "It authorises the public key embedded in the cell.")
    terms = " ".join(TERMS.removeprefix("colabssh: ").split())
    return "\n".join([
        "# colabssh",
        "",
        "**Run all** (Runtime > Run all) runs the one cell below. It mounts your Drive, starts a key-only sshd "
        "on 127.0.0.1, opens the tunnel you picked in its form and prints `colabssh connect CODE`: run that "
        f"line on your laptop once. {key}",
        "",
        "**On a new runtime** (Colab recycles them): open this notebook, Run all, then press *Reconnect* in "
        "VS Code. The runtime keeps its host key (on Drive), an empty /content comes back from the last backup "
        "(made every `sync_every` seconds), and a laptop connected with `colabssh connect CODE --drive-folder "
        "PATH` finds the new runtime by itself (otherwise, connect the new code).",
        "",
        f"**Before you run it:** {terms}",
    ])


def _lines(text: str) -> list[str]:
    """A cell's source as nbformat stores it: its lines, each with its newline but the last."""
    return text.splitlines(keepends=True)


def render_notebook(tunnel: str, public_key: str, sync_every: int = NOTEBOOK_SYNC_EVERY, *, restore: bool = True,
                    fresh_host_key: bool = False) -> str:
    """The notebook as Colab saves it (its keys in Colab's order, two-space indent)."""
    source = form_cell_source(tunnel, public_key, sync_every, restore=restore, fresh_host_key=fresh_host_key)
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 0,
        "metadata": {
            "colab": {"provenance": [], "gpuType": "T4"},
            "kernelspec": {"name": "python3", "display_name": "Python 3"},
            "language_info": {"name": "python"},
            "accelerator": "GPU",
        },
        "cells": [
            {"cell_type": "markdown", "source": _lines(about_markdown(key_from_secret=not public_key)),
             "metadata": {"id": INFO_CELL_ID}},
            {"cell_type": "code", "source": _lines(source), "metadata": {"id": FORM_CELL_ID, "cellView": "form"},
             "execution_count": None, "outputs": []},
        ],
    }
    return json.dumps(notebook, indent=2, ensure_ascii=False) + "\n"


def build_notebook(tunnel: str, public_key: Path | None, key_from_secret: bool, sync_every: int, paths: Paths, *,
                   restore: bool = True, fresh_host_key: bool = False) -> str:
    """The whole notebook text; every input checked before anything is written."""
    check_tunnel(tunnel)
    return render_notebook(tunnel, embedded_key(public_key, key_from_secret, paths), sync_every, restore=restore,
                           fresh_host_key=fresh_host_key)


def check_notebook_path(path: Path) -> None:
    """Colab's File > Upload notebook takes .ipynb files only: a notebook named otherwise could not be uploaded."""
    if path.suffix != ".ipynb":
        raise ColabsshError(f"--notebook {path} does not end in .ipynb",
                            "name it e.g. colabssh.ipynb: Colab uploads notebooks by that suffix", BAD_INPUT)


def write_notebook(notebook: Path, out: Path | None, tunnel: str, public_key: Path | None, key_from_secret: bool,
                   sync_every: int | None, paths: Paths, *, restore: bool = True, fresh_host_key: bool = False
                   ) -> list[str]:
    """`bootstrap --notebook`: write the notebook (and with OUT the plain cell too, with the cell's own default
    sync_every), every input and destination checked before anything is written; the lines to say."""
    check_notebook_path(notebook)
    if out is not None and os.path.realpath(out) == os.path.realpath(notebook):  # never raises, even on a loop
        raise ColabsshError(f"--out and --notebook both name {notebook}",
                            "give the cell and the notebook files of their own", BAD_INPUT)
    options = {"restore": restore, "fresh_host_key": fresh_host_key}
    text = build_notebook(tunnel, public_key, key_from_secret,
                          NOTEBOOK_SYNC_EVERY if sync_every is None else sync_every, paths, **options)
    written = [(notebook, "--notebook", text)]
    if out is not None:
        written.append((out, "--out", build_cell(tunnel, public_key, key_from_secret, sync_every or 0, paths,
                                                 **options)))
    for path, option, _ in written:
        refuse_special_file(path, option)
    for path, option, content in written:
        write_atomically(path, content, option)
    said = [f"wrote the notebook to {notebook}: upload it once (File > Upload notebook, or save it in Drive); "
            "then open it and Run all"]
    return said + ([f"wrote the cell to {out}"] if out is not None else [])
