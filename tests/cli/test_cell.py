"""`colabssh bootstrap`: the cell it prints, the key it embeds, and its refusals."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import colab_bootstrap
from colabssh_cli.app import main
from tests.fakes import client_key_path, colab_env, new_key, ssh

NOT_A_KEY = "hello, this is not a key\n"


def _options(cell_text: str) -> dict:
    """The COLABSSH_OPTIONS the cell embeds (read from its syntax tree, not executed)."""
    for node in ast.parse(cell_text).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COLABSSH_OPTIONS":
            return ast.literal_eval(node.value)
    raise AssertionError("no COLABSSH_OPTIONS in the cell")


def test_prints_one_cell_with_colabssh_own_key_made_private(isolated_home, capsys):
    assert main(["bootstrap", "--tunnel", "cloudflared"]) == 0
    captured = capsys.readouterr()
    cell = captured.out
    compile(cell, "<cell>", "exec")
    assert cell.startswith("# colabssh ")  # stdout is the cell alone: `colabssh bootstrap > cell.py`
    # making the key is said once, on stderr
    assert captured.err == "made colabssh's own key ~/.ssh/colabssh/id_ed25519 (its .pub goes into the cell)\n"
    key = client_key_path(isolated_home)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    options = _options(cell)
    assert options["tunnel"] == "cloudflared"
    assert options["public_key"].split()[:2] == key.with_suffix(".pub").read_text().split()[:2]
    private_body = key.read_text().splitlines()[1:-1]
    assert private_body and not any(line in cell for line in private_body)
    # the same key is used again, not replaced, and nothing more is said
    assert main(["bootstrap", "--tunnel", "local"]) == 0
    captured = capsys.readouterr()
    assert _options(captured.out)["public_key"] == options["public_key"] and captured.err == ""


def test_a_notebook_that_makes_the_key_says_so_once_too(isolated_home, capsys, tmp_path):
    notebook = tmp_path / "colabssh.ipynb"
    assert main(["bootstrap", "--notebook", str(notebook)]) == 0
    assert capsys.readouterr().err.splitlines()[0] == \
        "made colabssh's own key ~/.ssh/colabssh/id_ed25519 (its .pub goes into the cell)"
    assert main(["bootstrap", "--notebook", str(notebook)]) == 0
    assert "made colabssh's own key" not in capsys.readouterr().err
    assert main(["bootstrap", "--public-key", str(client_key_path(isolated_home).with_suffix(".pub"))]) == 0
    assert capsys.readouterr().err == ""


def test_the_cell_carries_colab_bootstrap_and_needs_nothing_else(tmp_path, client_key):
    from colab_bootstrap import pack, ship
    from colabssh_cli.cell import carried_bundle

    out = tmp_path / "cell.py"
    assert main(["bootstrap", "--tunnel", "local", "--out", str(out)]) == 0
    text = out.read_text()
    # the laptop's own bundle, byte for byte: the cell caches it under the hash `sync` and `demo` ask for
    assert carried_bundle(text) == pack.Bundle.of_package().data
    modules, _ = ship.decode(carried_bundle(text))
    for name in ("runtime", "sshd", "conncode", "tunnels", "tunnels.ngrok", "session_env", "ship"):
        assert f"colab_bootstrap.{name}" in modules
    assert "def main" not in text and "colab_bootstrap.conncode" not in text  # in the payload, not as source
    # python -I -S: no site-packages, no PYTHONPATH, not this checkout: the cell must bring all it imports
    probe = text.replace("_colabssh_status = _colabssh_main(COLABSSH_OPTIONS)", "_colabssh_status = 0")
    probe += "\nimport colab_bootstrap.runtime, colab_bootstrap.tunnels.ngrok, colab_bootstrap.tunnels.cloudflared\n" \
             "print(type(colab_bootstrap.runtime.__loader__).__name__, colab_bootstrap.__version__)\n"
    (tmp_path / "probe.py").write_text(probe)
    result = subprocess.run([sys.executable, "-I", "-S", str(tmp_path / "probe.py")], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["BundleImporter", colab_bootstrap.__version__]


def test_public_key_option_embeds_that_key(tmp_path, capsys):
    key = new_key(tmp_path / "keys", "mine")
    assert main(["bootstrap", "--tunnel", "local", "--public-key", str(key.with_suffix(".pub"))]) == 0
    assert _options(capsys.readouterr().out)["public_key"] == key.with_suffix(".pub").read_text().strip()


@pytest.mark.parametrize(("content", "message"), [
    (NOT_A_KEY, "not an SSH public key"),
    ("", "the public key is empty"),
    (None, "private key"),  # the private key file itself
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPLACEHOLDER", "damaged or truncated"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnaOCFdCwAxPerC7oYBQAlHTu05NJc9IsxS2Bt6N4Q1 a\n"
     "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnaOCFdCwAxPerC7oYBQAlHTu05NJc9IsxS2Bt6N4Q1 b\n", "exactly one"),
    ('command="rm -rf /" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnaOCFdCwAxPerC7oYBQAlHTu05NJc9IsxS2Bt6N4Q1',
     "not an SSH public key"),
])
def test_a_public_key_that_is_not_one_is_refused_and_nothing_is_written(tmp_path, capsys, content, message):
    if content is None:
        source = new_key(tmp_path / "keys", "secret")
    else:
        source = tmp_path / "key.pub"
        source.write_text(content)
    out = tmp_path / "cell.py"
    assert main(["bootstrap", "--public-key", str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("colabssh: error: ") and message in err and "\n  hint: " in err
    assert "Traceback" not in err and "BEGIN OPENSSH" not in err
    assert list(tmp_path.glob("*cell.py*")) == []


def test_a_missing_public_key_file_is_a_clear_error(tmp_path, capsys):
    assert main(["bootstrap", "--public-key", str(tmp_path / "nope.pub")]) == 2
    err = capsys.readouterr().err
    assert "cannot read the public key" in err and "No such file" in err and "hint:" in err


def test_unknown_tunnel_kind_is_refused(capsys, client_key):
    assert main(["bootstrap", "--tunnel", "wireguard"]) == 2
    err = capsys.readouterr().err
    assert "unknown tunnel kind 'wireguard'" in err and "ngrok" in err and "cloudflared" in err
    assert capsys.readouterr().out == ""


def test_unwritable_out_leaves_nothing_behind(tmp_path, capsys, client_key):
    out = tmp_path / "missing-folder" / "cell.py"
    assert main(["bootstrap", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {out}" in err and "Traceback" not in err
    assert not out.parent.exists()


def test_the_real_console_script_reports_bad_input_without_traceback(tmp_path):
    bad = tmp_path / "bad.pub"
    bad.write_text(NOT_A_KEY)
    exe = Path(sys.executable).with_name("colabssh")
    result = subprocess.run([str(exe), "bootstrap", "--public-key", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stdout == "" and "colabssh: error:" in result.stderr and "Traceback" not in result.stderr


def test_a_cell_without_a_key_reads_the_colab_secret(tmp_path, start_runtime, isolated_home, capsys):
    key = new_key(tmp_path / "keys", "from-secret")
    cell = tmp_path / "generic-cell.py"
    assert main(["bootstrap", "--tunnel", "local", "--key-from-secret", "--out", str(cell)]) == 0
    assert _options(cell.read_text())["public_key"] == ""
    secret = key.with_suffix(".pub").read_text().strip()
    running = start_runtime(cell=cell, extra_env=colab_env(tmp_path, {"COLABSSH_PUBKEY": secret}))
    result = ssh(running.info, key, "echo ok")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    assert (running.state / "authorized_keys").read_text().strip() == secret


def test_key_from_secret_and_public_key_exclude_each_other(tmp_path, capsys):
    key = new_key(tmp_path / "keys")
    assert main(["bootstrap", "--key-from-secret", "--public-key", str(key.with_suffix(".pub"))]) == 2
    assert "exclude each other" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/null"])
def test_out_naming_a_device_or_a_fifo_is_refused_and_left_as_it_was(tmp_path, capsys, client_key, kind):
    # as root, renaming the cell over /dev/null would replace the machine's /dev/null with a regular file
    out = tmp_path / "out"
    if kind == "fifo":
        os.mkfifo(out)
    else:
        out.symlink_to("/dev/null")
    before = os.lstat(out)
    assert main(["bootstrap", "--tunnel", "local", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    what = {"fifo": "a FIFO (named pipe)", "link to /dev/null": "a character device"}[kind]
    assert captured.err.splitlines()[0] == f"colabssh: error: --out {out} is {what}, not a file"
    assert "leave --out out to print the cell" in captured.err
    after = os.lstat(out)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["out"]  # no temp file left


@pytest.fixture(scope="module")
def longest_key(tmp_path_factory) -> Path:
    """The longest public key line people use: RSA 4096 with a long comment (~800 characters)."""
    key = tmp_path_factory.mktemp("keys") / "id_rsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "4096", "-N", "", "-C", "someone.with.a.long.name@" +
                    "a-laptop-whose-hostname-is-long.example.org", "-f", str(key)], check=True)
    return key.with_suffix(".pub")


def test_both_cells_stay_under_80_kb_with_the_longest_options(tmp_path, longest_key):
    from colabssh_cli.cell import MAX_CELL_BYTES
    from tests.notebooks import form_cell_source

    longest = ["--tunnel", "cloudflared", "--public-key", str(longest_key), "--sync-every", "999999999",
               "--no-restore", "--fresh-host-key"]
    cell, notebook = tmp_path / "cell.py", tmp_path / "colabssh.ipynb"
    assert main(["bootstrap", *longest, "--out", str(cell), "--notebook", str(notebook)]) == 0
    assert _options(cell.read_text())["public_key"] == longest_key.read_text().strip()
    sizes = {"cell": len(cell.read_bytes()), "form cell": len(form_cell_source(notebook).encode("utf-8"))}
    assert MAX_CELL_BYTES == 80_000 and all(size <= MAX_CELL_BYTES for size in sizes.values()), sizes


def test_the_first_lines_say_what_it_does_its_secrets_how_to_stop_it_and_its_options(capsys, client_key):
    assert main(["bootstrap", "--tunnel", "cloudflared"]) == 0
    lines = capsys.readouterr().out.split("\n")
    head = lines[:lines.index("}") + 1]  # up to the end of COLABSSH_OPTIONS
    assert len(head) <= 16 and all(len(line) <= 120 for line in head)
    text = "\n".join(head)
    for said in ("paste this into a Colab cell", "prints", "colabssh connect CODE", "NGROK_AUTHTOKEN",
                 "COLABSSH_PUBKEY", "To stop it: `colabssh_stop()`", "COLABSSH_OPTIONS = {", '"tunnel": "cloudflared"'):
        assert said in text, said


def test_a_cell_cut_short_says_so_in_one_line(tmp_path, client_key):
    out = tmp_path / "cell.py"
    assert main(["bootstrap", "--tunnel", "local", "--out", str(out)]) == 0
    lines = out.read_text().split("\n")
    damaged = next(i for i, line in enumerate(lines) if line.startswith('"') and len(line) > 100)
    lines[damaged] = lines[damaged][:50] + '"'  # a paste that lost the rest of a line
    out.write_text("\n".join(lines))
    done = subprocess.run([sys.executable, "-I", "-S", str(out)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "colabssh: this cell's code is damaged (cut short when pasted?): make it again with " \
                          "`colabssh bootstrap`\n"


def test_connect_that_makes_the_key_says_so_once_and_bootstrap_then_does_not(isolated_home, capsys):
    """Whichever command makes colabssh's key says so (README: the first one that needs it)."""
    from tests.runtime.test_conncode import base, code_of

    assert main(["connect", "--no-check", "--no-open", code_of(base())]) == 0
    err = capsys.readouterr().err
    assert err.count("made colabssh's own key ~/.ssh/colabssh/id_ed25519 (its .pub goes into the cell)\n") == 1
    assert main(["bootstrap"]) == 0
    assert capsys.readouterr().err == ""


def test_a_python_without_bz2_gets_one_line_that_names_it(tmp_path, client_key):
    """pyenv builds a python without bz2 when libbz2-dev is missing: `import bz2` then fails on _bz2."""
    out = tmp_path / "cell.py"
    assert main(["bootstrap", "--tunnel", "local", "--out", str(out)]) == 0
    fake = tmp_path / "nobz2"
    fake.mkdir()
    (fake / "bz2.py").write_text("raise ModuleNotFoundError(\"No module named '_bz2'\", name='_bz2')\n")
    done = subprocess.run([sys.executable, "-S", str(out)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(fake)})
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr == f"colabssh: this python ({sys.executable}) has no _bz2 module, which the cell needs to " \
                          "unpack itself: use a python built with it (Colab's has it; with pyenv, install " \
                          "libbz2-dev first)\n"


def test_bootstrap_with_the_key_made_takes_no_lock(isolated_home, capsys, client_key, monkeypatch):
    """A read-only ~/.ssh (a managed machine) does not stop `bootstrap` once the key is there: it only reads it,
    without colabssh's lock (whose file it would have to create)."""
    from colabssh_cli.sshconfig import apply

    def no_lock(paths):
        raise AssertionError("bootstrap took colabssh's lock")

    monkeypatch.setattr(apply, "locked", no_lock)
    assert main(["bootstrap", "--tunnel", "local"]) == 0
    assert _options(capsys.readouterr().out)["public_key"] == client_key
