"""Making bundles for ``ship``: this package's, on the laptop (``collect``, ``Bundle``), with the text of BOOT
(``boot_program``, cut from ship.py's own source); and the cell's own, cached on the runtime for the laptop's
commands (``cache_running_bundle``). Standard library only.

A bundle ships each module as ``shipped_source`` gives it: comments and docstrings blanked, every line where it
was, so the cell stays small (docs/how-it-works.md, "How code reaches the runtime") while a traceback's line
number is still the line of the file in the checkout. The cell and the laptop's commands both take the one
``Bundle.of_package()``, so the bundle the cell caches is the one a command asks for by its hash."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from . import ship


def collect(root: Optional[Path] = None, package: str = ship.PACKAGE) -> tuple[dict[str, str], list[str]]:
    """Every module of the package at ROOT (default: this file's folder), subpackages included."""
    root = Path(ship.__file__).parent if root is None else root
    modules: dict[str, str] = {}
    packages: list[str] = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        folders = [root.joinpath(*parts[:i]) for i in range(len(parts))]
        if any(not part.isidentifier() for part in parts) or \
                not all((folder / "__init__.py").is_file() for folder in folders):
            continue  # not importable by name: a stray "x-y.py", a folder that is no package
        if parts[-1] == "__init__":
            name = ".".join((package, *parts[:-1]))
            packages.append(name)
        else:
            name = ".".join((package, *parts))
        modules[name] = path.read_text(encoding="utf-8")
    return modules, packages


# One lexeme after any run of other text: a string literal (triple-quoted first) or a comment. The code this package
# is written in (Python 3.10's syntax: no f-string holds its own quote) has no other place where a quote or a # is.
_LEXEME = re.compile(r'''[^"'#]*(?:(?P<string>"""[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*"""'''
                     r"|'''[^'\\]*(?:(?:\\.|'(?!''))[^'\\]*)*'''"
                     r'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
                     r"|'[^'\\\n]*(?:\\.[^'\\\n]*)*')"
                     r"|(?P<comment>#[^\n]*))", re.DOTALL)
_STATEMENT_START = re.compile(r"[ \t]*[rRuUbB]{0,2}")  # what may stand before a string that starts a statement
_STATEMENT_END = re.compile(r"[ \t]*(?:#[^\n]*)?(?:\n|\Z)")


def shipped_source(source: str) -> str:
    """SOURCE as a bundle ships it: without comments (and the blanks before them), and with each string that is
    a statement of its own (docstrings; nothing reads ``__doc__`` on the runtime) blanked to ``""`` or to a
    triple-quoted string of its newlines. Every line stays where it was, so tracebacks name the checkout's line
    numbers; the code is the same code. Deterministic, on any python, and idempotent; about 5 ms for the
    package, with no tokenizer (tokenize would cost every laptop command that ships code 80 ms)."""
    out: list[str] = []
    code: list[str] = []  # the code between lexemes since the bracket depth was last brought up to date
    kept = seen = at = depth = 0
    while True:
        match = _LEXEME.match(source, at)
        if match is None:
            break
        kind = match.lastgroup or ""
        start, end = match.span(kind)
        code.append(source[seen:start])
        seen = at = end
        if kind == "comment":
            cut = start
            while cut > kept and source[cut - 1] in " \t":
                cut -= 1
            out.append(source[kept:cut])
            kept = end
            continue
        line = source.rfind("\n", 0, start) + 1
        if not _STATEMENT_START.fullmatch(source, line, start):
            continue
        text = "".join(code)
        code.clear()
        depth += sum(map(text.count, "([{")) - sum(map(text.count, ")]}"))
        if depth == 0 and not source.endswith("\\\n", 0, line) and _STATEMENT_END.match(source, end):
            newlines = source.count("\n", start, end)
            out += [source[kept:start], '""' if not newlines else '"""' + "\n" * newlines + '"""']
            kept = end
    out.append(source[kept:])
    return "".join(out)


def top_level_blocks(source: str) -> dict[str, str]:
    """Each top-level ``def`` and ``class`` of SOURCE by name, with its decorators, as written (what
    ``inspect.getsource`` gives for it, without inspect's tokenising, which cost every laptop command 10 ms).
    A block runs to the next line that starts at column 0; this module has no string that does so inside one."""
    import re

    lines = source.splitlines(keepends=True)
    blocks: dict[str, str] = {}
    i = 0
    while i < len(lines):
        start = i
        while lines[i].startswith("@") and i + 1 < len(lines):
            i += 1
        match = re.match(r"(?:async\s+)?(?:def|class)\s+(\w+)", lines[i])
        i += 1
        if match is None:
            continue
        while i < len(lines) and (not lines[i].strip() or lines[i][0] in " \t"):
            i += 1
        end = i
        while not lines[end - 1].strip():
            end -= 1
        blocks[match.group(1)] = "".join(lines[start:end])
    return blocks


def boot_program(source: Optional[str] = None) -> str:
    """BOOT: the parts of this module it needs, then the call (runs with ``python -S -c``; stdlib only). The parts
    only a miss of the compiled-code cache needs travel as a string, compiled only then (1 ms less per command).
    SOURCE: ship.py's source (default: read from its file)."""
    if source is None:
        with open(ship.__file__, encoding="utf-8") as handle:
            source = handle.read()
    blocks = top_level_blocks(source)
    constants = "".join(f"{name} = {getattr(ship, name)!r}\n" for name in
                        ("FORMAT", "MISS_EXIT", "MISS_MARKER", "MAX_BUNDLE", "CODE_FOLDER", "CODE_HEAD", "MAX_CODE"))
    head = "from __future__ import annotations\nimport os, sys\n" + constants
    body = "\n".join(blocks[part.__name__] for part in ship._BOOT_PARTS)
    miss = "from __future__ import annotations\n" + "\n".join(blocks[part.__name__] for part in ship._MISS_PARTS)
    return head + body + f"\nMISS_PARTS = {miss!r}\nsys.exit(boot(sys.argv[1:]))\n"


class Bundle:
    """The laptop's bundle of this colab_bootstrap (each module as ``shipped_source`` gives it): its bytes, hash,
    and what is sent on a miss. The cell carries the same bytes."""

    def __init__(self, modules: Mapping[str, str], packages: Sequence[str]) -> None:
        self.data = ship.encode({name: shipped_source(source) for name, source in modules.items()}, packages)
        self.digest = ship.digest(self.data)

    def compressed(self) -> bytes:
        import zlib

        return zlib.compress(self.data, 9)

    @classmethod
    def of_package(cls) -> Bundle:
        return cls(*collect())


def running_bundle() -> Any:
    """The importer this process's colab_bootstrap comes from (a BundleImporter, maybe of another copy of
    ship.py's source, as the cell makes it), or None when it comes from files."""
    return next((f for f in sys.meta_path if type(f).__name__ == ship.BundleImporter.__name__), None)


def store(data: bytes, environ: Optional[Mapping[str, str]] = None) -> bool:
    """Cache a bundle's bytes as STATE/code/HASH (a unique temp name, fsync, rename); False when it cannot."""
    return ship.write_cached(ship.digest(data), data, os.environ if environ is None else environ) is not None


def cache_running_bundle(environ: Optional[Mapping[str, str]] = None) -> bool:
    """The cell's step: cache the bundle this process runs from (nothing when it runs from files)."""
    importer = running_bundle()
    if importer is None:
        return False
    data = ship.encode(importer.modules, sorted(importer.packages))
    environ = os.environ if environ is None else environ
    if read_cached(ship.digest(data), environ) == data:
        return True  # a re-run of the same cell: the file stays, and so does the compiled code made from it
    return store(data, environ)


def read_cached(digest: str, environ: Mapping[str, str]) -> Optional[bytes]:
    """The cached bundle of DIGEST, only when its bytes hash to DIGEST; None for anything else."""
    found = ship.read_bundle(digest, environ)
    return None if found is None else found[0]
