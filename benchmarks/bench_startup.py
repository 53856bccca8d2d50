"""How fast things start: the printed cell up to its connect line, and the CLI against bare typer.

    .venv/bin/python benchmarks/bench_startup.py [--runs N]

1. The cell `colabssh bootstrap --tunnel local` prints, run as `python cell.py` on this machine: seconds from
   starting the process to the `colabssh connect` line; with a new state folder (the runtime's host key is
   made) and again with that folder kept (the cell run again).
2. the CLI against `python -c "import typer"`, interleaved in the same run, ratios of the medians:
   `colabssh --version` (goal: at most 1.3x), `colabssh list --json` with one stored session (at most 1.6x), and
   the start of `status --json` and `sync`: the whole command up to its first ssh call, which an `ssh` on PATH
   that fails at once (as ssh does when nothing answers) ends there (reported, no goal).

Everything lives in a temp folder (HOME included); nothing of the real ~/.ssh is read or written.
"""

from __future__ import annotations

import argparse
import json
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


def cli_home(folder: Path) -> dict[str, str]:
    """A HOME with one stored session 'colab', and a PATH whose ssh fails at once (exit 255, nothing answers)."""
    home, bin_dir = folder / "cli-home", folder / "cli-bin"
    bin_dir.mkdir(parents=True)
    ssh = bin_dir / "ssh"
    ssh.write_text('#!/bin/sh\necho "ssh: connect to host 127.0.0.1 port 1: Connection refused" >&2\nexit 255\n')
    ssh.chmod(0o755)
    env = {**os.environ, "HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as users run it: Python caches compiled modules
    store = ("from colabssh_cli.paths import Paths\n"
             "from colabssh_cli.session import Session, Transport, save_sessions\n"
             "save_sessions(Paths.from_env(), {'colab': Session(alias='colab', host='127.0.0.1', port=1, "
             "user='root', tunnel=Transport.LOCAL)})\n")
    subprocess.run([sys.executable, "-c", store], check=True, env=env, cwd=folder)
    return env


def time_any(argv: list[str], env: dict[str, str]) -> float:
    """Seconds a command takes, whatever its exit code (status and sync end at the failing ssh)."""
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


CLI_FIGURES = [  # (name, arguments, goal)
    ("colabssh --version", ["--version"], 1.3),
    ("colabssh list --json", ["list", "--json"], 1.6),
    ("colabssh status --json, up to its ssh", ["status", "--json"], None),
    ("colabssh sync, up to its ssh", ["sync"], None),
]


def measure_cli(runs: int, folder: Path) -> list[tuple[str, float, float | None, str]]:
    """Each CLI figure against bare typer, interleaved: (figure, ratio of medians, goal, detail)."""
    env = cli_home(folder)
    typer = [sys.executable, "-c", "import typer"]
    commands = {name: [str(BIN / "colabssh"), *argv] for name, argv, _ in CLI_FIGURES}
    for argv in [typer, *commands.values()]:
        time_any(argv, env)  # warm the file cache
    times: dict[str, list[float]] = {name: [] for name in [*commands, "typer"]}
    for _ in range(runs):
        times["typer"].append(time_any(typer, env))
        for name, argv in commands.items():
            times[name].append(time_any(argv, env))
    bare = statistics.median(times["typer"])
    rows = [('python -c "import typer" (the baseline)', 1.0, None, summary(times["typer"]))]
    for name, _argv, goal in CLI_FIGURES:
        rows.append((f"{name} / import typer", statistics.median(times[name]) / bare, goal, summary(times[name])))
    return rows


def print_table(rows: list[tuple[str, float, float | None, str]]) -> bool:
    """Print figure | ratio | goal | detail; True when every goal holds."""
    width = max(len(row[0]) for row in rows)
    held = True
    for figure, ratio, goal, detail in rows:
        verdict = "" if goal is None else (f"goal <= {goal:.2f}: " + ("met" if ratio <= goal else "MISSED"))
        held &= goal is None or ratio <= goal
        print(f"{figure:<{width}}  {ratio:5.2f}x  {verdict:<22}  {detail}")
    return held


def summary(values: list[float]) -> str:
    return (f"median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f}; "
            f"{len(values)} runs)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--cli-only", action="store_true", help="Only the CLI figures (not the cell's start)")
    parser.add_argument("--json", type=Path, default=None, help="Also write the CLI figures to this file")
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
          f"{subprocess.run(['ssh', '-V'], capture_output=True, text=True).stderr.strip()}")
    if not args.cli_only:
        cell_start(args.runs)
    with tempfile.TemporaryDirectory(prefix="colabssh-bench-") as tmp:
        rows = measure_cli(args.runs * 3, Path(tmp))
    held = print_table(rows)
    if args.json is not None:
        table = [[figure, f"{ratio:.2f}x", "" if goal is None else f"<= {goal}x", goal is None or ratio <= goal]
                 for figure, ratio, goal, _detail in rows]
        args.json.write_text(json.dumps({"rows": table}))
    return 0 if held else 1


def cell_start(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="colabssh-bench-") as tmp:
        folder = Path(tmp)
        cell = render_cell(folder)
        fresh = [time_to_connect_line(cell, folder / f"fresh-{i}") for i in range(runs)]
        kept = folder / "kept"
        time_to_connect_line(cell, kept)  # makes the state folder once
        again = [time_to_connect_line(cell, kept) for _ in range(runs)]
    print(f"cell start -> connect line, local tunnel, new state folder: {summary(fresh)}")
    print(f"cell start -> connect line, local tunnel, cell run again:    {summary(again)}")


if __name__ == "__main__":
    sys.exit(main())
