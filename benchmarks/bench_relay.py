"""What the comeback's relay costs: a large `colabssh pull` and a fresh `ssh ALIAS true`, direct vs through the
relay (the ProxyCommand of a session with a Drive folder), in one run.

    .venv/bin/python benchmarks/bench_relay.py [--mib 256] [--runs 5] [--where /dev/shm] [--json FILE]

One run of the printed cell (tunnel: local) on this machine, connected three times: `direct` (a plain connect),
`fdpass` (`--drive-folder`: the relay finds the address, hands ssh the socket with ProxyUseFdpass and exits) and
`pump` (the same, with `ProxyUseFdpass no` set for it in ~/.ssh/config, as VSCodium's Open Remote-SSH runs a
ProxyCommand: the relay copies every byte). Figures (medians of --runs, the runs of each figure interleaved):

1. `colabssh pull` of one --mib MiB file (random bytes) into a fresh local folder, through the alias's shared
   connection (opened first): throughput through the relay / direct; goal: at least 0.80 for both modes;
2. a fresh login (`ssh -o ControlPath=none ALIAS true`): time through the relay - direct (the relay's start).

Everything lives in a temp folder (HOME included; --where /dev/shm by default so that the disk is not measured);
nothing of the real ~/.ssh is read or written. Exit code 0 when the goals hold, 1 otherwise.
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

BIN = Path(sys.executable).parent
GOAL = 0.80  # throughput through the relay / direct
ALIASES = ("direct", "fdpass", "pump")


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="size of the pulled file in MiB")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--where", type=Path, default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None,
                        help="Folder for the runtime and the pulled copies (default: /dev/shm)")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures to this file (bench_all.py)")
    args = parser.parse_args()

    from tests.cellrunner import start_cell

    ssh_version = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
          f"{platform.python_version()}, {ssh_version}; load {os.getloadavg()[0]:.2f}")
    tmp = Path(tempfile.mkdtemp(prefix="colabssh-bench-relay-", dir=args.where))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLABSSH_", "NGROK_", "PYNGROK_"))
           and k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"HOME": str(tmp / "home"), "NO_COLOR": "1",
                "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])})
    (tmp / "home").mkdir()
    drive = tmp / "My Drive"
    drive.mkdir()
    colabssh = [str(BIN / "colabssh")]
    cell_file = tmp / "cell.py"
    subprocess.run([*colabssh, "bootstrap", "--tunnel", "local", "--out", str(cell_file)], env=env, check=True,
                   capture_output=True)
    os.environ.update({"HOME": env["HOME"], "PYTHONPATH": env["PYTHONPATH"]})
    cell = start_cell(cell_file, tmp / "runtime")
    config = str(Path(env["HOME"]) / ".ssh" / "config")
    try:
        for alias in ALIASES:
            extra = [] if alias == "direct" else ["--drive-folder", str(drive)]
            subprocess.run([*colabssh, "connect", cell.code, "--no-open", "--name", alias, *extra], env=env,
                           check=True, capture_output=True)
        user = Path(config)
        # first value wins; "Host *" ends that block, so the Include below applies to every host again
        user.write_text("Host pump\n  ProxyUseFdpass no\nHost *\n\n" + user.read_text())
        with open(cell.content / "big.bin", "wb") as handle:
            for _ in range(args.mib):
                handle.write(os.urandom(1 << 20))
        pulls: dict[str, list[float]] = {alias: [] for alias in ALIASES}
        logins: dict[str, list[float]] = {alias: [] for alias in ALIASES}
        for alias in ALIASES:  # the shared connections, and one pull each to warm the page cache
            timed(["ssh", "-F", config, alias, "true"], env)
            timed([*colabssh, "pull", "--name", alias, "big.bin", str(tmp / "warm" / alias)], env)
        for run in range(args.runs):
            for alias in ALIASES:
                into = tmp / "pulled" / f"{alias}{run}"
                pulls[alias].append(timed([*colabssh, "pull", "--name", alias, "big.bin", str(into)], env))
                assert (into / "big.bin").stat().st_size == args.mib << 20
                shutil.rmtree(into)
                logins[alias].append(timed(["ssh", "-F", config, "-o", "ControlPath=none", alias, "true"], env))
        load = os.getloadavg()[0]
    finally:
        cell.stop()
        for alias in ALIASES:
            subprocess.run(["ssh", "-F", config, "-O", "exit", alias], env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    pull = {alias: statistics.median(times) for alias, times in pulls.items()}
    login = {alias: statistics.median(times) for alias, times in logins.items()}
    rows: list[tuple[str, str, str, bool]] = []
    for alias in ALIASES:
        rate = args.mib / pull[alias]
        print(f"{alias:>7}: pull {args.mib} MiB {pull[alias]:.3f} s ({rate:.0f} MiB/s); fresh login "
              f"{login[alias] * 1000:.0f} ms")
    for alias in ("fdpass", "pump"):
        ratio = pull["direct"] / pull[alias]
        rows.append((f"pull {args.mib} MiB, {alias} / direct throughput", f"{ratio:.2f}", f">= {GOAL:.2f}",
                     ratio >= GOAL))
        rows.append((f"fresh `ssh ALIAS true`, {alias} - direct", f"{(login[alias] - login['direct']) * 1000:+.0f} ms "
                     f"({login[alias] * 1000:.0f} vs {login['direct'] * 1000:.0f} ms)", "", True))
    ok = True
    print(f"\n{'figure':<44} {'measured':<28} {'goal':<8}")
    for label, measured, goal, held in rows:
        print(f"{label:<44} {measured:<28} {goal:<8} {'' if not goal else 'PASS' if held else 'FAIL'}")
        ok = ok and held
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "load": load}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
