"""The message catalogue: every string in colabssh_cli and colab_bootstrap that a user may read, held to two rules.

1. A count goes through ``colab_bootstrap.units.count`` ("1 file", "2 files", "1,203 files"): no placeholder put
   straight before a plural noun (``f"{n} files"``, ``f"{n} new files"``, ``"%d links"``, ``"{} entries"``), and no
   "file(s)" shortcut. A string that is caught although its placeholder is no number goes in ALLOWED with a reason.
2. Sizes in binary units only (KiB, MiB, GiB, as ``units.human_size`` writes them): no kB, KB, MB, GB or TB in a
   message (the sources, scripts/ and benchmarks/ as Python, and every line of docs/, README.md, CONTRIBUTING.md
   and the shell scripts in scripts/).

Docstrings and comments are not messages and are not read. The scan works on the syntax tree: an f-string's
placeholders are known as such, implicit concatenation across lines included.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("colabssh_cli", "colab_bootstrap")
UNIT_SCOPES = (*PACKAGES, "scripts", "benchmarks")

NOUNS = ("files", "folders", "directories", "links", "archives", "entries", "units", "items", "processes", "lines",
         "changes", "warnings", "errors", "sessions", "keys", "jobs", "runs", "times", "attempts", "tries",
         "servers", "extensions", "messages", "checks", "hosts", "tunnels", "connections", "copies", "hours",
         "minutes", "days", "bytes", "characters", "ports", "aliases", "notebooks", "cells", "backups", "steps")
ADJECTIVES = ("new", "changed", "deleted", "unchanged", "replaced", "skipped", "more", "other", "small", "big",
              "temporary", "setting", "symbolic", "special", "regular", "stale", "old", "missing", "kept")
PLACEHOLDER = "\x00"  # an f-string's {…} in the template the scan reads
_COUNTED = re.compile(
    rf"(?:{PLACEHOLDER}|\{{[^{{}}]*\}}|%[-+ #0-9.]*[dis])"  # {n}, a .format {}, or %d
    rf"\s+(?:(?:{'|'.join(ADJECTIVES)})\s+(?:and\s+(?:{PLACEHOLDER}|\{{[^{{}}]*\}})\s+\w+\s+)?)?"
    rf"(?:{'|'.join(NOUNS)})\b")
_SHORTCUT = re.compile(r"[a-z]\((?:s|es)\)")  # file(s), process(es)
_DECIMAL_UNIT = re.compile(r"(?<![A-Za-z])(?:[kKMGT]B|[kKMGT]b|kB/s|MB/s|GB/s)(?![A-Za-z])")

# Strings the scan catches that stay for now: path -> a fragment of each such string's template (an f-string's
# placeholders read as PLACEHOLDER). Each entry says why.
ALLOWED: dict[str, tuple[str, ...]] = {
}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def _counted_call(value: ast.FormattedValue) -> bool:
    """A placeholder that is itself a count (``{count(n, 'file')}``): its noun is inside."""
    call = value.value
    return isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "count"


def strings(path: Path) -> Iterator[tuple[int, str]]:
    """Every string literal of PATH but its docstrings, as (line, template): an f-string's placeholders are
    PLACEHOLDER (a ``count(...)`` placeholder is written as the words it makes: 'N noun')."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree)
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                inside.add(id(value))
                if isinstance(value, ast.Constant):
                    parts.append(str(value.value))
                elif isinstance(value, ast.FormattedValue):
                    inside.add(id(value.format_spec)) if value.format_spec is not None else None
                    parts.append("N noun" if _counted_call(value) else PLACEHOLDER)
            yield node.lineno, "".join(parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip \
                and id(node) not in inside:
            yield node.lineno, node.value


def sources(scopes: tuple[str, ...]) -> Iterator[Path]:
    for scope in scopes:
        yield from sorted((ROOT / scope).rglob("*.py"))


def offenders(pattern: re.Pattern[str], scopes: tuple[str, ...]) -> list[str]:
    found = []
    for path in sources(scopes):
        rel = str(path.relative_to(ROOT))
        for line, text in strings(path):
            match = pattern.search(text)
            if match is None or any(fragment in text for fragment in ALLOWED.get(rel, ())):
                continue
            found.append(f"{rel}:{line}: {text[max(match.start() - 30, 0):match.end() + 10]!r}")
    return sorted(set(found))


def _counted(text: str) -> bool:
    return bool(_COUNTED.search(text) or _SHORTCUT.search(text))


class _Either:
    """Both count patterns as one (``offenders`` takes one pattern)."""

    def search(self, text: str) -> re.Match[str] | None:
        return _COUNTED.search(text) or _SHORTCUT.search(text)


def test_every_count_with_a_noun_goes_through_units_count() -> None:
    found = offenders(_Either(), PACKAGES)  # type: ignore[arg-type]
    assert not found, ("a number put straight before a plural noun (1 files): write it with "
                       "colab_bootstrap.units.count(n, 'file'):\n" + "\n".join(found))


def test_messages_use_binary_size_units() -> None:
    found = offenders(_DECIMAL_UNIT, UNIT_SCOPES)
    assert not found, "a decimal size unit in a message: write KiB, MiB, GiB (units.human_size):\n" + "\n".join(found)


def test_docs_use_binary_size_units() -> None:
    """The docs too (README.md included): "a few GiB", "57 MiB"; a line of shell in them as well."""
    found = []
    for doc in sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md", ROOT / "CONTRIBUTING.md",
                       *(ROOT / "scripts").glob("*.sh")]):
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            if _DECIMAL_UNIT.search(line):
                found.append(f"{doc.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not found, "a decimal size unit in the docs or scripts: write KiB, MiB, GiB:\n" + "\n".join(found)


def test_the_scan_catches_what_it_is_for(tmp_path: Path) -> None:
    """The rules themselves: each kind of offender is caught, and the helper's way through is not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""A docstring may say 3 files."""\n'
        'a = f"{n} files"\n'
        'b = f"{n:,} new and {m} changed files copied"\n'
        'c = "%d links" % n\n'
        'd = "{} entries".format(n)\n'
        'e = f"kept {n} file(s)"\n'
        'f = f"{count(n, \'file\')} copied"\n'
        'g = f"{n} " \\\n    "folders"\n'
        'h = f"{size} MB"\n'
        'i = f"{human_size(size)}"\n')
    hits = {line for line, text in strings(sample) if _counted(text)}
    assert hits == {2, 3, 4, 5, 6, 8}
    assert {line for line, text in strings(sample) if _DECIMAL_UNIT.search(text)} == {10}
