"""`colabssh bootstrap --notebook`: the Colab notebook it writes, its form cell run for real, and its refusals."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import nbformat
import pytest

from colab_bootstrap.runtime import TERMS
from colabssh_cli.app import main
from colabssh_cli.cell import PAYLOAD_START
from tests.fakes import client_key_path, new_key, ssh
from tests.notebooks import (
    form_cell,
    form_cell_source,
    form_fields,
    read_notebook,
    set_form_field,
    title,
    write_form_cell,
)

WROTE = ("wrote the notebook to {}: upload it once (File > Upload notebook, or save it in Drive); "
         "then open it and Run all")


def _options(source: str) -> dict:
    """COLABSSH_OPTIONS as the form cell makes them: its code up to the payload, run (the form's fields are
    variables, so the options are no literal to read off the syntax tree)."""
    namespace: dict = {}
    exec(compile(source.split("\n" + PAYLOAD_START)[0], "<form>", "exec"), namespace)
    return namespace["COLABSSH_OPTIONS"]


def _payload(cell_text: str) -> str:
    """What follows COLABSSH_OPTIONS in a cell: the compressed package and the call of runtime.main."""
    return cell_text[cell_text.index("\n" + PAYLOAD_START):]


def test_the_notebook_is_nbformat_4_as_colab_saves_it(tmp_path, client_key, capsys):
    path = tmp_path / "colabssh.ipynb"
    assert main(["bootstrap", "--notebook", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.splitlines() == [WROTE.format(path)]
    nbformat.validate(nbformat.read(path, as_version=nbformat.NO_CONVERT))  # raises on anything invalid
    notebook = read_notebook(path)
    assert (notebook["nbformat"], notebook["nbformat_minor"]) == (4, 0)
    assert notebook["metadata"] == {"colab": {"provenance": [], "gpuType": "T4"}, "accelerator": "GPU",
                                    "kernelspec": {"name": "python3", "display_name": "Python 3"},
                                    "language_info": {"name": "python"}}
    about, code = notebook["cells"]
    assert about["cell_type"] == "markdown" and code is form_cell(notebook)
    assert code["metadata"]["cellView"] == "form" and code["outputs"] == [] and code["execution_count"] is None
    assert len({cell["metadata"]["id"] for cell in notebook["cells"]}) == 2
    words = "".join(about["source"])
    for said in ("Drive", "key-only sshd", "tunnel", "colabssh connect CODE", "Run all", "Reconnect"):
        assert said in words
    assert " ".join(TERMS.removeprefix("colabssh: ").split()) in words  # what Colab's terms allow
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    # the same options, the same bytes: writing it again changes nothing
    before = path.read_bytes()
    assert main(["bootstrap", "--notebook", str(path)]) == 0
    assert path.read_bytes() == before


def test_the_form_cell_is_one_folded_colab_form_over_the_plain_cells_payload(tmp_path, client_key):
    path, plain = tmp_path / "colabssh.ipynb", tmp_path / "cell.py"
    assert main(["bootstrap", "--notebook", str(path), "--out", str(plain)]) == 0
    source = form_cell_source(path)
    assert title(source) == ("colabssh: reach this runtime over SSH", "form")
    fields = form_fields(source)
    assert {name: (field.value, field.type) for name, field in fields.items()} == {
        "tunnel": ("ngrok", "string"), "sync_every": (600, "integer"), "restore": (True, "boolean"),
        "fresh_host_key": (False, "boolean")}
    assert fields["tunnel"].choices == ["ngrok", "cloudflared"]
    assert _options(source) == {"tunnel": "ngrok", "public_key": client_key.strip(), "sync_every": 600,
                                "restore": True, "fresh_host_key": False}
    compile(source, "<form cell>", "exec")
    head = source[:source.index("\n" + PAYLOAD_START)]  # what a reader of the code sees first
    for said in ("prints `colabssh connect CODE`", "NGROK_AUTHTOKEN", "COLABSSH_PUBKEY",
                 "To stop it: `colabssh_stop()`", "COLABSSH_OPTIONS = {"):
        assert said in head, said
    assert len(head.split("\n")) <= 30
    # the same payload as the plain cell, which keeps its own default (no periodic backup) and its bytes
    assert _payload(source) == _payload(plain.read_text())
    assert "\n    \"sync_every\": 0,\n" in plain.read_text()
    alone = tmp_path / "alone.py"
    assert main(["bootstrap", "--out", str(alone)]) == 0
    assert alone.read_bytes() == plain.read_bytes()


def test_options_become_the_forms_values(tmp_path, capsys):
    key = new_key(tmp_path / "keys", "mine")
    path = tmp_path / "colabssh.ipynb"
    assert main(["bootstrap", "--notebook", str(path), "--tunnel", "cloudflared", "--sync-every", "0",
                 "--no-restore", "--fresh-host-key", "--public-key", str(key.with_suffix(".pub"))]) == 0
    source = form_cell_source(path)
    assert {name: field.value for name, field in form_fields(source).items()} == {
        "tunnel": "cloudflared", "sync_every": 0, "restore": False, "fresh_host_key": True}
    assert _options(source)["public_key"] == key.with_suffix(".pub").read_text().strip()
    # a notebook that reads the key from the Colab Secret embeds none and says where to put it
    generic = tmp_path / "generic.ipynb"
    assert main(["bootstrap", "--notebook", str(generic), "--key-from-secret"]) == 0
    assert _options(form_cell_source(generic))["public_key"] == ""
    assert "COLABSSH_PUBKEY" in "".join(read_notebook(generic)["cells"][0]["source"])


@pytest.mark.parametrize(("field", "value"), [("tunnel", "cloudflared"), ("sync_every", 45), ("restore", False),
                                              ("fresh_host_key", True)])
def test_editing_a_field_as_colab_does_changes_that_option_only(tmp_path, client_key, field, value):
    path = tmp_path / "colabssh.ipynb"
    assert main(["bootstrap", "--notebook", str(path)]) == 0
    source = form_cell_source(path)
    edited = set_form_field(source, field, value)
    assert form_fields(edited)[field].value == value  # still a field Colab shows
    assert _options(edited) == {**_options(source), field: value}
    pairs = zip(source.split("\n"), edited.split("\n"), strict=True)
    changed = [index for index, (old, new) in enumerate(pairs) if old != new]
    assert changed == [form_fields(source)[field].line]  # Colab rewrites that one line


def test_the_form_cell_run_off_colab_starts_a_runtime(tmp_path, start_runtime, isolated_home):
    path = tmp_path / "colabssh.ipynb"
    assert main(["bootstrap", "--notebook", str(path)]) == 0
    cell = write_form_cell(path, tmp_path / "form-cell.py")
    cell.write_text(set_form_field(cell.read_text(), "sync_every", 45))  # the user's edit in the form
    running = start_runtime(cell=cell, extra_env={"COLABSSH_TUNNEL": "local"})
    assert running.code and running.info.port > 0
    result = ssh(running.info, client_key_path(isolated_home), "echo ok")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    assert f"up to {running.drive}" in running.output and "every 45 s" in running.output


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in ("home", "keys"))


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/null"])
def test_a_notebook_path_naming_a_device_or_a_fifo_is_refused_and_left_as_it_was(tmp_path, capsys, client_key,
                                                                                kind):
    path = tmp_path / "colabssh.ipynb"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/null")
    before = os.lstat(path)
    out = tmp_path / "cell.py"
    assert main(["bootstrap", "--notebook", str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    what = {"fifo": "a FIFO (named pipe)", "link to /dev/null": "a character device"}[kind]
    assert captured.err.splitlines() == [f"colabssh: error: --notebook {path} is {what}, not a file",
                                         "  hint: give a file path such as colabssh.ipynb"]
    after = os.lstat(path)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert _leftovers(tmp_path) == ["colabssh.ipynb"]  # no temp file, and not the cell either


def test_an_out_naming_a_fifo_beside_a_notebook_writes_neither(tmp_path, capsys, client_key):
    out = tmp_path / "cell.py"
    os.mkfifo(out)
    assert main(["bootstrap", "--notebook", str(tmp_path / "colabssh.ipynb"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"colabssh: error: --out {out} is a FIFO (named pipe), not a file\n")
    assert _leftovers(tmp_path) == ["cell.py"]


@pytest.mark.parametrize(("args", "message"), [
    (["--tunnel", "wireguard"], "unknown tunnel kind 'wireguard'"),
    (["--key-from-secret", "--public-key", "{key}"], "--key-from-secret and --public-key exclude each other"),
    (["--public-key", "{bad}"], "not an SSH public key"),
    (["--public-key", "{private}"], "private key"),
    (["--out", "{notebook}"], "--out and --notebook both name"),
])
def test_bad_options_fail_with_one_line_and_write_no_file(tmp_path, capsys, client_key, args, message):
    private = new_key(tmp_path / "keys", "k")
    (tmp_path / "keys" / "bad.pub").write_text("hello, this is not a key\n")
    path = tmp_path / "colabssh.ipynb"
    values = {"key": str(private.with_suffix(".pub")), "bad": str(tmp_path / "keys" / "bad.pub"),
              "private": str(private), "notebook": str(path)}
    assert main(["bootstrap", "--notebook", str(path), *(arg.format(**values) for arg in args)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == "" and len(lines) == 2 and lines[0].startswith("colabssh: error: ")
    assert message in lines[0] and lines[1].startswith("  hint: ") and "BEGIN OPENSSH" not in captured.err
    assert _leftovers(tmp_path) == []


def test_a_notebook_not_named_ipynb_is_refused(tmp_path, capsys, client_key):
    assert main(["bootstrap", "--notebook", str(tmp_path / "colabssh.py")]) == 2
    assert "does not end in .ipynb" in capsys.readouterr().err
    assert _leftovers(tmp_path) == []
