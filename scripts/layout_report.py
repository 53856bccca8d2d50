"""Print the layout figures the project keeps to (CONTRIBUTING.md), measured on the tree (not a test).

- lines per module in colabssh_cli/ and colab_bootstrap/ (max 400, median at most 130);
- which laptop modules import subprocess, paramiko, pty or asyncio themselves (at most 4);
- modules named like a command module outside commands/ (none).

Usage: .venv/bin/python scripts/layout_report.py   (exit code 1 when a limit is broken)
"""

from __future__ import annotations

import ast
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("colabssh_cli", "colab_bootstrap")
MAX_LINES = 400
MAX_MEDIAN = 130
PROCESS_MODULES = {"subprocess", "paramiko", "pty", "asyncio"}
MAX_STARTERS = 4


def modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if p.stat().st_size)  # empty __init__.py: not a module


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def main() -> int:
    broken = []
    all_sizes = []
    for package in PACKAGES:
        sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
                 for p in modules(package)}
        all_sizes += sizes.values()
        biggest = sorted(sizes.items(), key=lambda item: -item[1])[:5]
        print(f"{package}: {len(sizes)} modules, median {statistics.median(sizes.values()):.0f} lines, "
              f"largest: " + ", ".join(f"{name} {n}" for name, n in biggest))
        broken += [f"{name} has {n} lines (limit {MAX_LINES})" for name, n in sizes.items() if n > MAX_LINES]
    median = statistics.median(all_sizes)
    print(f"both packages: median {median:.0f} lines (limit {MAX_MEDIAN})")
    if median > MAX_MEDIAN:
        broken.append(f"median module {median:.0f} lines (limit {MAX_MEDIAN})")
    starters = [p.relative_to(ROOT).as_posix() for p in modules("colabssh_cli") if imported(p) & PROCESS_MODULES]
    print(f"laptop modules importing {'/'.join(sorted(PROCESS_MODULES))}: {len(starters)} ({', '.join(starters)})")
    if len(starters) > MAX_STARTERS:
        broken.append(f"{len(starters)} laptop modules start processes themselves (limit {MAX_STARTERS})")
    commands = {p.stem for p in (ROOT / "colabssh_cli" / "commands").glob("*.py")} - {"__init__"}
    clashes = [p.relative_to(ROOT).as_posix() for p in (ROOT / "colabssh_cli").rglob("*")
               if "commands" not in p.parts and p.stem in commands and p.name != "__init__.py"]
    if clashes:
        broken.append(f"named like a command module: {', '.join(clashes)}")
    print(f"modules named like a command module outside commands/: {', '.join(clashes) or 'none'}")
    for line in broken:
        print(f"limit broken: {line}")
    if not broken:
        print("every limit holds")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
