"""docs/reference.md is generated from the typer app (scripts/gen_reference.py) and must be up to date."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from colabssh_cli import errors

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gen_reference.py"
REFERENCE = ROOT / "docs" / "reference.md"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_is_up_to_date():
    expected = generator().render()
    assert REFERENCE.read_text(encoding="utf-8") == expected, (
        "docs/reference.md is out of date: run `.venv/bin/python scripts/gen_reference.py` and commit the result")


def test_the_check_mode_notices_a_stale_file(tmp_path, monkeypatch):
    gen = generator()
    stale = tmp_path / "reference.md"
    stale.write_text(gen.render().replace("## `colabssh doctor`", "## `colabssh doktor`"))
    monkeypatch.setattr(gen, "REFERENCE", stale)
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1
    assert "doktor" in stale.read_text()  # --check writes nothing
    assert gen.main([]) == 0 and gen.main(["--check"]) == 0
    assert "## `colabssh doctor`" in stale.read_text()


def test_every_command_and_option_is_documented():
    import typer

    from colabssh_cli.app import app

    text = REFERENCE.read_text(encoding="utf-8")
    root = typer.main.get_command(app)
    ctx = root.make_context("colabssh", [], resilient_parsing=True)
    for name in root.list_commands(ctx):
        command = root.get_command(ctx, name)
        assert f"## `colabssh {name}`" in text and f"(#colabssh-{name})" in text
        sub = command.make_context(name, [], parent=ctx, resilient_parsing=True)
        for param in command.get_params(sub):
            for option in getattr(param, "opts", []):
                if option.startswith("-"):
                    assert option in text, (name, option)


def test_the_exit_code_table_is_errors_py():
    text = REFERENCE.read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| ([0-9]+) \| `([A-Z_]+)` \|", text, re.MULTILINE))
    constants = {str(value): name for name, value in vars(errors).items() if name.isupper() and isinstance(value, int)}
    assert table == constants


def test_the_script_runs_as_a_program():
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_troubleshooting_quotes_the_messages_colabssh_prints():
    """The advice texts in docs/troubleshooting.md are the code's own, word for word (change both together)."""
    from colab_bootstrap import demo
    from colab_bootstrap.sync import protocol as sync_protocol
    from colab_bootstrap.tunnels import ngrok as tunnel_ngrok
    from colabssh_cli.remote import preflight

    text = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    quoted = [part for pair in tunnel_ngrok.EXPLANATIONS.values() for part in pair]
    quoted += list(sync_protocol.RSYNC_ADVICE.values())
    quoted += [demo.NO_CUDA_MESSAGE, demo.NO_CUDA_HINT, demo.NO_TORCH_HINT, preflight.RERUN]
    missing = [message for message in quoted if message not in text]
    assert missing == []
    codes = {int(code) for code in re.findall(r"^\| ([0-9]+) \| ", text, re.MULTILINE)}
    assert set(sync_protocol.RSYNC_ADVICE) <= codes
