"""What a bundle ships of each module (colab_bootstrap/pack.py ``shipped_source``): the same code, every line where
it was, without comments and docstrings; a traceback from the shipped code names the checkout's line."""

from __future__ import annotations

import ast
import io
import os
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

from colab_bootstrap import pack, ship

MODULES, PACKAGES = pack.collect()


def _without_docstrings(source: str) -> str:
    """SOURCE's syntax tree (no positions) with every string statement emptied: what stripping may change."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and \
                isinstance(node.value.value, (str, bytes)):
            node.value.value = type(node.value.value)()
    return ast.dump(tree)


def _comments(source: str) -> list[str]:
    return [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.COMMENT]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_ships_as_the_same_code_with_its_lines_in_place(name: str) -> None:
    source = MODULES[name]
    shipped = pack.shipped_source(source)
    assert _without_docstrings(shipped) == _without_docstrings(source)  # Python reads the same program
    assert _comments(shipped) == []
    assert pack.shipped_source(shipped) == shipped  # idempotent: the cell's modules re-encode to the same bytes
    before, after = source.split("\n"), shipped.split("\n")
    assert len(after) == len(before)
    tree = ast.parse(shipped)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            assert not (ast.get_docstring(node, clean=False) or "").strip()
    blank_strings = {line for node in ast.walk(tree) if isinstance(node, ast.Expr)
                     and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                     for line in range(node.lineno - 1, node.end_lineno or node.lineno)}
    for index, (was, now) in enumerate(zip(before, after, strict=True)):
        # a line is kept, cut before its comment, or part of a blanked string statement
        assert now == was or was.startswith(now) or index in blank_strings, (index + 1, was, now)


def test_the_package_ships_much_smaller() -> None:
    raw = ship.encode(MODULES, PACKAGES)
    assert len(pack.Bundle(MODULES, PACKAGES).data) < 0.85 * len(raw)


@pytest.mark.parametrize(("source", "shipped"), [
    ('"""Doc."""\nx = 1  # one\n', '""\nx = 1\n'),
    ('def f():\n    """Doc\n\n    more."""\n    return 1\n', 'def f():\n    """\n\n"""\n    return 1\n'),
    ("class A:\n    r'''Raw\n    doc.'''\n", 'class A:\n    r"""\n"""\n'),
    ('x = "# not a comment"  # a comment\n', 'x = "# not a comment"\n'),
    ('x = """\nkept\n"""\n', 'x = """\nkept\n"""\n'),  # a value, not a statement
    ('f(\n    "kept"\n    "too"\n)\n', 'f(\n    "kept"\n    "too"\n)\n'),  # inside brackets
    ('x = \\\n    "kept"\n', 'x = \\\n    "kept"\n'),  # a continued line
    ('"kept".join(y)\n', '"kept".join(y)\n'),  # a statement that does more than name a string
    ("f'{x!r}'\n", "f'{x!r}'\n"),  # an f-string runs code: kept
    ("s = 'it\\'s # here'  # gone\n", "s = 'it\\'s # here'\n"),
    ('    # only a comment\nx = 1\n', '\nx = 1\n'),
    ('d = {"a": "b"}  # x\n"""after\nit"""\n', 'd = {"a": "b"}\n"""\n"""\n'),
])
def test_strings_and_comments_are_told_apart(source: str, shipped: str) -> None:
    assert pack.shipped_source(source) == shipped


def test_a_traceback_from_shipped_code_names_the_checkout_s_line(tmp_path) -> None:
    """Run the package from its bundle (as the cell and BOOT do), make it raise, and compare the traceback's line
    number with the line of the real file that raises."""
    probe = (
        "import sys, traceback\n"
        "from colab_bootstrap import pack, ship\n"
        "bundle = pack.Bundle.of_package()\n"
        "ship.install(*ship.decode(bundle.data))\n"
        "import colab_bootstrap.pubkey as pubkey\n"
        "assert type(pubkey.__loader__).__name__ == 'BundleImporter'\n"
        "try:\n"
        "    pubkey.authorised_key_line('not a key')\n"
        "except Exception as exc:\n"
        "    frame = traceback.extract_tb(exc.__traceback__)[-1]\n"
        "    print(frame.filename, frame.lineno)\n"
    )
    checkout = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": checkout}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    filename, lineno = done.stdout.split()
    assert filename.startswith("<colabssh:colab_bootstrap.")
    module = filename.removeprefix("<colabssh:").removesuffix(">")
    real = Path(checkout, *module.split(".")).with_suffix(".py").read_text(encoding="utf-8").split("\n")
    assert "raise BootstrapError" in real[int(lineno) - 1]


def test_nothing_on_the_runtime_reads_a_docstring() -> None:
    """Docstrings travel blanked: a module that read one (``__doc__``, ``getdoc``) would get an empty string."""
    shipped = {name: pack.shipped_source(source) for name, source in MODULES.items()}
    readers = [name for name, source in shipped.items() if "__doc__" in source or "getdoc" in source]
    assert readers == []
