"""How fast `colabssh connect CODE` is, against one fresh OpenSSH login to the same runtime.

    .venv/bin/python benchmarks/bench_connect.py [--runs 7] [--lines 5000] [--code CHECKOUT]

One run of the printed cell (tunnel: local) on this machine. Timed, each as the whole command a user runs
(`python -m colabssh_cli connect CODE --no-open`: CLI start, the check, the files, the login), interleaved round by
round so that the machine's mood hits every figure alike; medians of --runs:

* the floor: one fresh OpenSSH login, ``ssh -F CONFIG -o ControlPath=none colab true``;
* first connect: a fresh HOME each time (colabssh's key copied in, nothing else), its shared connection closed
  afterwards (not timed); goal: at most 2.5x the floor;
* repeated connect: the same code again in a HOME that is connected already (as a user re-runs it); goal: at most
  1.6x the floor;
* first connect beside a --lines ~/.ssh/config (Host blocks with several names and patterns, Match blocks, a
  ``Host *``) against beside none; goal: at most 1.15x.

--code times another checkout's colabssh_cli (e.g. an older commit in a `git worktree`), for before/after figures.
Everything lives in a temp folder (every HOME included); nothing of the real ~/.ssh is read or written.
Exit code 0 when the goals hold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOCKET_PATH_LIMIT = 104  # as colabssh_cli/sshconfig/render.py: each HOME's own sockets must fit under it
GOALS = {"first": 2.5, "repeated": 1.6, "long": 1.15}


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return elapsed


class Homes:
    """Fresh HOMEs holding only colabssh's key (the one the cell authorised), each with its own socket folder."""

    def __init__(self, tmp: Path, key_home: Path, base_env: dict[str, str]) -> None:
        self.tmp, self.key_home, self.base_env, self.count = tmp, key_home, base_env, 0

    def fresh(self, user_config: bytes | None = None) -> tuple[Path, dict[str, str]]:
        self.count += 1
        home = self.tmp / f"h{self.count}"
        own = home / ".ssh" / "colabssh"
        own.mkdir(parents=True, mode=0o700)
        os.chmod(home / ".ssh", 0o700)
        for name in ("id_ed25519", "id_ed25519.pub"):
            shutil.copy2(self.key_home / ".ssh" / "colabssh" / name, own / name)
        if len(os.fsencode(str(own / "cm"))) + 1 + 40 + 17 + 1 > SOCKET_PATH_LIMIT:
            raise SystemExit(f"{own / 'cm'} is too long for a socket path: pass a shorter temp folder (TMPDIR)")
        if user_config is not None:
            (home / ".ssh" / "config").write_bytes(user_config)
            os.chmod(home / ".ssh" / "config", 0o600)
        return home, {**self.base_env, "HOME": str(home), "COLABSSH_OPENSSH_HOME": str(home)}


def close_master(home: Path, env: dict[str, str]) -> None:
    subprocess.run(["ssh", "-F", str(home / ".ssh" / "config"), "-O", "exit", "colab"], env=env, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose colabssh_cli is timed")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures to this file (bench_all.py)")
    args = parser.parse_args()
    checkout = args.code.resolve()

    from tests.cellrunner import start_cell
    from tests.cli.sshconfig.test_long_config import long_user_config  # the same shape the tests check

    ssh_version = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
          f"{platform.python_version()}, {ssh_version}")
    commit = subprocess.run(["git", "-C", str(checkout), "log", "--oneline", "-1"], capture_output=True,
                            text=True).stdout.strip()
    print(f"timed: {checkout} ({commit or '?'})")
    tmp = Path(tempfile.mkdtemp(prefix="cbc-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("COLABSSH_", "NGROK_", "PYNGROK_"))
                and k != "PYTHONDONTWRITEBYTECODE"}  # as users run it: Python caches compiled modules
    base_env.update({"NO_COLOR": "1", "PYTHONPATH": str(checkout), "COLABSSH_PROFILE_D": ""})
    colabssh = [sys.executable, "-m", "colabssh_cli"]
    key_home = tmp / "k"
    key_home.mkdir()
    key_env = {**base_env, "HOME": str(key_home), "COLABSSH_OPENSSH_HOME": str(key_home)}
    cell_file = tmp / "cell.py"
    subprocess.run([*colabssh, "bootstrap", "--tunnel", "local", "--out", str(cell_file)], env=key_env, check=True,
                   capture_output=True)
    saved_home = os.environ.get("HOME")
    os.environ["HOME"] = str(key_home)  # the cell's own HOME: inside the temp folder
    cell = start_cell(cell_file, tmp / "rt")
    homes = Homes(tmp, key_home, base_env)
    opened: list[tuple[Path, dict[str, str]]] = []
    ok = True
    try:
        connect = [*colabssh, "connect", cell.code, "--no-open"]
        again_home, again_env = homes.fresh()  # connected once, then connected again each round
        opened.append((again_home, again_env))
        timed(connect, again_env)
        config = str(again_home / ".ssh" / "config")
        long_config = long_user_config(args.lines)
        figures: dict[str, list[float]] = {"login": [], "first": [], "repeated": [], "long": []}
        for _ in range(args.runs):
            figures["login"].append(timed(["ssh", "-F", config, "-o", "ControlPath=none", "colab", "true"], again_env))
            home, env = homes.fresh()
            figures["first"].append(timed(connect, env))
            close_master(home, env)
            figures["repeated"].append(timed(connect, again_env))
            home, env = homes.fresh(long_config)
            figures["long"].append(timed(connect, env))
            close_master(home, env)
        median = {name: statistics.median(values) for name, values in figures.items()}
        ratios = {"first": median["first"] / median["login"], "repeated": median["repeated"] / median["login"],
                  "long": median["long"] / median["first"]}
        print(f"\n{args.runs} rounds, medians (min-max):")
        for name, label in (("login", "fresh OpenSSH login (ssh -o ControlPath=none colab true)"),
                            ("first", "first connect (a fresh HOME)"), ("repeated", "repeated connect (same code)"),
                            ("long", f"first connect beside a {args.lines:,}-line ~/.ssh/config")):
            values = figures[name]
            print(f"  {label:<62} {median[name]:.3f} s ({min(values):.3f}-{max(values):.3f})")
        print(f"\n  {'figure':<52} {'measured':>9} {'goal':>8}")
        rows = []
        for name, label in (("first", "first connect / fresh login"), ("repeated", "repeated connect / fresh login"),
                            ("long", f"connect beside {args.lines:,} lines / beside none")):
            held = ratios[name] <= GOALS[name]
            ok = ok and held
            rows.append([label, f"{ratios[name]:.2f}x", f"<= {GOALS[name]}x", held])
            print(f"  {label:<52} {ratios[name]:>8.2f}x {'<= ' + str(GOALS[name]) + 'x':>8}  "
                  f"{'PASS' if held else 'FAIL'}")
        if args.json is not None:
            args.json.write_text(json.dumps({"rows": rows}))
    finally:
        cell.stop()
        for home, env in opened:
            close_master(home, env)
        if saved_home is not None:
            os.environ["HOME"] = saved_home
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
