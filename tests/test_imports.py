"""The import rules: colab_bootstrap (all its subpackages) is standard library only at module level and never
imports the CLI side; the CLI's core never imports typer or rich (only commands/, app.py and console.py do);
at most four laptop modules start processes or speak SSH themselves (the door in colabssh_cli/remote/);
the CLI imports heavy things (paramiko, pyngrok, torch) only when a command needs them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import colab_bootstrap
import colabssh_cli

PACKAGE = Path(colab_bootstrap.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))
CLI = Path(colabssh_cli.__file__).parent
CLI_MODULES = sorted(CLI.rglob("*.py"))
UI = ("commands", "app.py", "console.py")  # the only places that may import typer or rich
PROCESS_MODULES = {"subprocess", "paramiko", "pty", "asyncio"}
NEVER = {"colabssh_cli", "typer", "rich", "paramiko", "click"}
HEAVY = ("paramiko", "pyngrok", "torch", "cryptography", "nacl", "yaml")


def _module_level_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """(top-level name, line) of imports that run when the module is imported: not inside a def or class."""
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _all_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """Every import anywhere, importlib.import_module("name") included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], node.lineno))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in
              ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((node.args[0].value.split(".")[0], node.lineno))
    return found


def _name(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def _dotted(path: Path) -> str:
    """A module's dotted name below colab_bootstrap ("tunnels" for tunnels/__init__.py)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def test_there_are_modules_to_check():
    names = {_dotted(path) for path in MODULES}
    assert {"runtime", "sshd", "conncode", "tunnels", "tunnels.ngrok", "tunnels.cloudflared", "session_env",
            "demo", "ship", "sync.protocol", "sync.main"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _name(p, PACKAGE))
def test_module_level_imports_are_standard_library_only(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    allowed = set(sys.stdlib_module_names) | {"__future__", "colab_bootstrap"}  # itself: checked too
    outside = [f"{name} (line {line})" for name, line in _module_level_imports(tree) if name not in allowed]
    assert outside == [], f"{path.relative_to(PACKAGE)} imports at module level: {outside}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _name(p, PACKAGE))
def test_colab_bootstrap_never_imports_the_cli_side(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    forbidden = [f"{name} (line {line})" for name, line in _all_imports(tree) if name in NEVER]
    assert forbidden == [], f"{path.relative_to(PACKAGE)} imports {forbidden}"


@pytest.mark.parametrize("path", [p for p in CLI_MODULES if not _name(p, CLI).startswith(UI)],
                         ids=lambda p: _name(p, CLI))
def test_the_cli_core_never_imports_typer_or_rich(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    ui = [f"{name} (line {line})" for name, line in _all_imports(tree) if name in {"typer", "rich", "click"}]
    assert ui == [], f"{_name(path, CLI)} imports {ui}: only commands/, app.py and console.py may"


def test_few_laptop_modules_start_processes_themselves():
    starters = sorted(_name(path, CLI) for path in CLI_MODULES
                      if {name for name, _ in _all_imports(ast.parse(path.read_text()))} & PROCESS_MODULES)
    assert len(starters) <= 4, f"these start processes or speak SSH themselves: {starters}; use colabssh_cli/remote/"
    assert "remote/process.py" in starters


def test_the_checker_catches_what_it_should():
    tree = ast.parse("import os\nimport yaml\nif True:\n    from rich import print\n"
                     "def f():\n    import paramiko\n    importlib.import_module('typer')\n")
    assert [n for n, _ in _module_level_imports(tree)] == ["os", "yaml", "rich"]
    assert {n for n, _ in _all_imports(tree)} == {"os", "yaml", "rich", "paramiko", "typer"}


def _modules_after(argv: list[str]) -> dict:
    """Run the CLI in a fresh interpreter; which heavy modules were imported, and what it printed."""
    script = ("import io, json, sys, contextlib\n"
              "from colabssh_cli.app import main\n"
              "out = io.StringIO()\n"
              "with contextlib.redirect_stdout(out):\n"
              f"    code = main({argv!r})\n"
              f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
              "print(json.dumps({'code': code, 'heavy': heavy, 'out': out.getvalue()}))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["bootstrap", "--help"]])
def test_the_cli_starts_without_heavy_imports(argv):
    seen = _modules_after(argv)
    assert seen["code"] == 0
    assert seen["heavy"] == []
    assert seen["out"].strip()


def test_the_probe_would_see_a_heavy_import():
    script = "import paramiko, sys; print(sorted(m for m in sys.modules if m.split('.')[0] == 'paramiko')[:1])"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "['paramiko']"
