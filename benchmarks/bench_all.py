"""Every speed goal of colabssh in one table: runs the three benchmarks, each measuring its figures as ratios
against a baseline timed in the same run (interleaved, medians), and prints them together.

    .venv/bin/python benchmarks/bench_all.py [--runs 7] [--sizes 1000,10000,100000] [--where /dev/shm]

- bench_startup.py: `colabssh --version` and `colabssh list --json` against `python -c "import typer"` (and the
  start of `status` and `sync`, reported);
- bench_sync.py: no-change re-syncs against one fresh login plus a local no-change `rsync -a`, at each size;
  the first sync of 1,000 files against a local `rsync -a`; bytes rewritten;
- bench_connect.py: `colabssh connect CODE --no-open`, first and repeated, against one fresh OpenSSH login; beside
  a 5,000-line ~/.ssh/config against beside none.

Exit code 0 when every goal holds, 1 otherwise. Run it on an idle machine: the ratios move with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, args: list[str], out: Path) -> list[list]:
    """Run one benchmark (its own output shown as it goes); the rows it wrote to OUT."""
    print(f"\n=== {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *args, "--json", str(out)], check=False)
    if not out.exists():
        return [[f"{script}: no figures (it failed)", "", "a result", False]]
    return json.loads(out.read_text())["rows"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--where", default=None, help="passed to bench_sync.py (e.g. /dev/shm)")
    args = parser.parse_args()
    runs = ["--runs", str(args.runs)]
    with tempfile.TemporaryDirectory(prefix="colabssh-bench-all-") as tmp:
        folder = Path(tmp)
        rows = run("bench_startup.py", [*runs, "--cli-only"], folder / "startup.json")
        sync_args = [*runs, "--sizes", args.sizes] + (["--where", args.where] if args.where else [])
        rows += run("bench_sync.py", sync_args, folder / "sync.json")
        rows += run("bench_connect.py", runs, folder / "connect.json")
    load = os.getloadavg()[0]
    print(f"\n=== every figure ({os.cpu_count()} CPUs, Python {platform.python_version()}, load {load:.2f} at the end)")
    width = max(len(str(row[0])) for row in rows)
    held = True
    for figure, measured, goal, ok in rows:
        verdict = "" if not goal else ("met" if ok else "MISSED")
        held = held and bool(ok)
        print(f"{figure:<{width}}  {measured:<42}  {goal:<8}  {verdict}")
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
