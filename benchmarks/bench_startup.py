"""How fast things start: the printed cell up to its connect line, and the CLI against bare typer.

    .venv/bin/python benchmarks/bench_startup.py [--runs N]

1. The cell `colabssh bootstrap --tunnel local` prints, run as `python cell.py` on this machine: seconds from
   starting the process to the `colabssh connect` line; with a new state folder (the runtime's host key is
   made) and again with that folder kept (the cell run again).
2. `colabssh --version` against `python -c "import typer"`, interleaved in the same run; the ratio of the
   medians is what issue 2 bounds (at most 1.5).

Everything lives in a temp folder (HOME included); nothing of the real ~/.ssh is read or written.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
CONNECT = "colabssh connect "


def render_cell(folder: Path) -> Path:
    key = folder / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    cell = folder / "cell.py"
    subprocess.run([str(BIN / "colabssh"), "bootstrap", "--tunnel", "local", "--public-key", f"{key}.pub",
                    "--out", str(cell)], check=True, capture_output=True)
    return cell


def time_to_connect_line(cell: Path, where: Path) -> float:
    env = {**os.environ, "HOME": str(where / "home"), "COLABSSH_STATE": str(where / "state"),
           "COLABSSH_CONTENT": str(where / "content"), "COLABSSH_DRIVE": str(where / "drive"),
           "COLABSSH_PORT": "0", "COLABSSH_PROFILE_D": "", "PYTHONUNBUFFERED": "1"}
    for name in ("home", "drive"):
        (where / name).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(cell)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, text=True, env=env)
    assert process.stdout is not None
    elapsed = None
    output = []
    for line in process.stdout:
        output.append(line)
        if line.startswith(CONNECT):
            elapsed = time.perf_counter() - started
            break
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    if elapsed is None:
        raise SystemExit("the cell printed no connect line:\n" + "".join(output))
    return elapsed


def time_command(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def summary(values: list[float]) -> str:
    return (f"median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f}; "
            f"{len(values)} runs)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
          f"{subprocess.run(['ssh', '-V'], capture_output=True, text=True).stderr.strip()}")
    with tempfile.TemporaryDirectory(prefix="colabssh-bench-") as tmp:
        folder = Path(tmp)
        cell = render_cell(folder)
        fresh = [time_to_connect_line(cell, folder / f"fresh-{i}") for i in range(args.runs)]
        kept = folder / "kept"
        time_to_connect_line(cell, kept)  # makes the state folder once
        again = [time_to_connect_line(cell, kept) for _ in range(args.runs)]
    print(f"cell start -> connect line, local tunnel, new state folder: {summary(fresh)}")
    print(f"cell start -> connect line, local tunnel, cell run again:    {summary(again)}")

    colabssh = [str(BIN / "colabssh"), "--version"]
    typer = [sys.executable, "-c", "import typer"]
    time_command(colabssh), time_command(typer)  # warm the file cache
    cli, bare = [], []
    for _ in range(args.runs * 3):
        cli.append(time_command(colabssh))
        bare.append(time_command(typer))
    ratio = statistics.median(cli) / statistics.median(bare)
    print(f"colabssh --version:          {summary(cli)}")
    print(f'python -c "import typer":    {summary(bare)}')
    print(f"ratio of medians: {ratio:.2f}, of minimums: {min(cli) / min(bare):.2f} (issue 2 asks for at most 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
