"""How fast `colabssh sync` is against its floor, at several tree sizes, in one run.

    .venv/bin/python benchmarks/bench_sync.py [--sizes 1000,10000,100000] [--runs 7] [--where /dev/shm]

One run of the printed cell (tunnel: local) on this machine, connected with `colabssh connect`; in its content
root one tree per size (N small files of 1,000-4,000 bytes, 100 to a folder), each synced on its own
(`colabssh sync tN`).
Every `colabssh sync` is timed as the whole command a user runs: the CLI's start, one ssh command through the
alias's shared connection (ControlMaster auto + ControlPersist: up, as for a user's second sync), the runner on
the runtime, rsync. Figures (medians of --runs, the runs of each figure interleaved with those it is compared to):

1. no-change re-sync of each tree / its floor: one fresh OpenSSH login (`ssh -o ControlPath=none ALIAS true`)
   plus a plain local no-change `rsync -a` of the same tree; goals: at most 1.0x at 10,000 files, 1.2x at 100,000;
2. per-file cost: how the no-change re-sync grows from one size to the next, against local rsync's growth;
3. first full sync of 1,000 small files (each run into a fresh --to folder) / a local `rsync -a` of them into a
   fresh folder; goal: at most 2.0x;
4. re-sync with 1% of the small files changed (the 10,000 tree, or the largest below it): the bytes rewritten
   in the backup (files whose inode changed) at most 1.05x the changed files', and no unchanged file rewritten;
   a no-change re-sync rewrites no file;
5. where a no-change re-sync's time goes (the largest tree of at most 10,000 files): the CLI's start, one ssh
   command through the shared connection, the runner's python start and imports, its checks (prepare), rsync,
   reading rsync's output; the rest is the remote command's session, the lock, the job's files, the fork, the
   laptop's reading of the events.

Everything lives in a temp folder (HOME included); nothing of the real ~/.ssh is read or written.
Exit code 0 when the goals hold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
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
GOALS = {10_000: 1.0, 100_000: 1.2}  # no-change re-sync / floor
FIRST_GOAL = 2.0  # first sync of 1,000 small files / local rsync -a


def make_tree(root: Path, small: int) -> None:
    rng = random.Random(small)
    for i in range(small):
        folder = root / f"d{i // 100:04d}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.txt").write_bytes(rng.randbytes(rng.randint(1000, 4000)))


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    found = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            found[os.path.relpath(path, root)] = (info.st_ino, info.st_mtime_ns, info.st_size)
    return found


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed, done.stdout


def median_of(runs: int, step) -> float:  # noqa: ANN001
    return statistics.median(step() for _ in range(runs))


def breakdown(cell, env: dict[str, str], colabssh: list[str], config: str, size: int, runs: int) -> list[tuple]:  # noqa: ANN001
    """Where a no-change re-sync of tSIZE goes, part by part, each timed on its own (medians)."""
    from colab_bootstrap.sync.plan import prepare
    from colab_bootstrap.sync.request import Request

    request = Request("backup", cell.content, cell.drive, paths=[f"t{size}"])
    cli = median_of(runs, lambda: timed([*colabssh, "--version"], env)[0])
    ssh = median_of(runs, lambda: timed(["ssh", "-F", config, "colab", "true"], env)[0])
    runner = median_of(runs, lambda: timed([sys.executable, "-S", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                                            "import colab_bootstrap.sync.main", str(ROOT)], env)[0])

    def prepared() -> float:
        started = time.perf_counter()
        prepare(request, shutil.which("rsync") or "rsync")
        return time.perf_counter() - started

    plan_time = median_of(runs, prepared)
    plan = prepare(request, shutil.which("rsync") or "rsync")
    outputs: list[bytes] = []

    def rsynced() -> float:
        started = time.perf_counter()
        outputs.append(subprocess.run(plan.argv, capture_output=True, env={**env, "LC_ALL": "C"}).stdout)
        return time.perf_counter() - started

    rsync_time = median_of(runs, rsynced)

    def followed() -> float:
        started = time.perf_counter()
        try:
            from colab_bootstrap.sync.follow import reader_for
            reader = reader_for({"argv": plan.argv, "mode": "backup"})
        except ImportError:  # before the fast reader (to compare)
            from colab_bootstrap.sync.protocol import LogParser
            reader = LogParser(items=False)
        reader.feed(outputs[-1])
        reader.close()
        return time.perf_counter() - started

    follow_time = median_of(runs, followed)
    return [("CLI start (colabssh --version)", cli), ("one ssh command, shared connection", ssh),
            ("runner: python -S start + imports", runner), ("runner: prepare (checks)", plan_time),
            ("rsync, no change", rsync_time), ("reading rsync's output", follow_time)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="tree sizes, comma-separated (e.g. 1000,10000,100000)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--where", type=Path, default=None,
                        help="Folder for the runtime's content, Drive and state (default: the system temp folder; "
                        "/dev/shm takes the disk's write-back noise out)")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures to this file (bench_all.py)")
    args = parser.parse_args()
    sizes = sorted({int(text) for text in args.sizes.split(",") if text.strip()} | {1000})

    from tests.cellrunner import start_cell

    rsync_version = subprocess.run(["rsync", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    ssh_version = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
          f"{platform.python_version()}, {rsync_version}, {ssh_version}; load {os.getloadavg()[0]:.2f}")
    tmp = Path(tempfile.mkdtemp(prefix="colabssh-bench-sync-", dir=args.where))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLABSSH_", "NGROK_", "PYNGROK_"))
           and k != "PYTHONDONTWRITEBYTECODE"}  # as users run it: Python caches compiled modules
    env.update({"HOME": str(tmp / "home"), "NO_COLOR": "1",
                "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])})
    (tmp / "home").mkdir()
    colabssh = [str(BIN / "colabssh")]
    cell_file = tmp / "cell.py"
    subprocess.run([*colabssh, "bootstrap", "--tunnel", "local", "--out", str(cell_file)], env=env, check=True,
                   capture_output=True)
    os.environ.update({"HOME": env["HOME"], "PYTHONPATH": env["PYTHONPATH"]})
    cell = start_cell(cell_file, tmp / "runtime")
    ok = True
    config = str(Path(env["HOME"]) / ".ssh" / "config")
    try:
        subprocess.run([*colabssh, "connect", cell.code, "--no-open"], env=env, check=True, capture_output=True)
        for size in sizes:
            make_tree(cell.content / f"t{size}", size)
        print(f"trees: {', '.join(f't{size}: {size:,} files' for size in sizes)} "
              "(1,000-4,000 bytes each, 100 to a folder)")
        sync = [*colabssh, "sync", "--json"]
        mirror = tmp / "mirror"
        mirror.mkdir()
        os.sync()

        # first syncs: every tree once into the backup (the no-change runs need it), and 1,000 files per run
        firsts: dict[int, float] = {}
        firsts_local: dict[int, float] = {}
        for size in sizes:
            firsts[size], out = timed([*sync, f"t{size}"], env)
            assert json.loads(out)["files_copied"] == size, out
            firsts_local[size] = timed(["rsync", "-a", f"{cell.content}/t{size}/", f"{mirror}/t{size}/"], env)[0]
        first_1k, local_1k = [], []
        for run in range(args.runs):
            elapsed, out = timed([*sync, "--to", f"bench/first{run}", "t1000"], env)
            first_1k.append(elapsed)
            assert json.loads(out)["files_copied"] == 1000, out
            local_1k.append(timed(["rsync", "-a", f"{cell.content}/t1000/", f"{tmp}/local-first{run}/"], env)[0])

        # no-change re-syncs, interleaved with the floor's parts
        backup = cell.drive / "colabssh" / "content"
        before = snapshot(backup)
        logins: list[float] = []
        resyncs: dict[int, list[float]] = {size: [] for size in sizes}
        local: dict[int, list[float]] = {size: [] for size in sizes}
        for _ in range(args.runs):
            logins.append(timed(["ssh", "-F", config, "-o", "ControlPath=none", "colab", "true"], env)[0])
            for size in sizes:
                elapsed, out = timed([*sync, f"t{size}"], env)
                resyncs[size].append(elapsed)
                assert json.loads(out)["files_copied"] == 0, out
                local[size].append(timed(["rsync", "-a", f"{cell.content}/t{size}/", f"{mirror}/t{size}/"], env)[0])
        rewritten_nochange = sum(1 for k, v in snapshot(backup).items() if before.get(k) != v)
        login = statistics.median(logins)

        # 1% changed
        changed_size = max(size for size in sizes if size <= 10_000)
        rng = random.Random(7)
        small_files = sorted(k for k in snapshot(cell.content / f"t{changed_size}"))
        changed_total, rewritten_total, exact, one_percent = 0, 0, True, []
        for _ in range(args.runs):
            changed = rng.sample(small_files, max(1, changed_size // 100))
            for rel in changed:
                with open(cell.content / f"t{changed_size}" / rel, "ab") as handle:
                    handle.write(b"changed" * 10)
            changed_total += sum((cell.content / f"t{changed_size}" / rel).stat().st_size for rel in changed)
            before = snapshot(backup / f"t{changed_size}")
            elapsed, out = timed([*sync, f"t{changed_size}"], env)
            one_percent.append(elapsed)
            after = snapshot(backup / f"t{changed_size}")
            rewritten = [k for k, v in after.items() if before.get(k, (None,))[0] != v[0]]
            rewritten_total += sum(after[k][2] for k in rewritten)
            exact = exact and sorted(rewritten) == sorted(changed)
        ratio_bytes = rewritten_total / changed_total

        parts = breakdown(cell, env, colabssh, config, changed_size, args.runs)
        load = os.getloadavg()[0]
    finally:
        cell.stop()
        subprocess.run(["ssh", "-F", config, "-O", "exit", "colab"], env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    rows: list[tuple[str, str, str, bool]] = []
    print(f"\nfloor: fresh ssh login {login:.3f} s + local no-change rsync -a")
    print(f"{'files':>8} {'re-sync':>9} {'rsync -a':>9} {'floor':>7} {'ratio':>7} {'first sync':>11} {'rsync -a':>9}")
    for size in sizes:
        resync, plain = statistics.median(resyncs[size]), statistics.median(local[size])
        ratio = resync / (login + plain)
        print(f"{size:>8,} {resync:>8.3f}s {plain:>8.3f}s {login + plain:>6.3f}s {ratio:>6.2f}x {firsts[size]:>10.3f}s "
              f"{firsts_local[size]:>8.3f}s")
        if size in GOALS:
            rows.append((f"no-change re-sync, {size:,} files / floor", f"{ratio:.2f}x", f"<= {GOALS[size]:.1f}x",
                         ratio <= GOALS[size]))
    for small, large in zip(sizes, sizes[1:], strict=False):
        ours = (statistics.median(resyncs[large]) - statistics.median(resyncs[small])) / (large - small)
        theirs = (statistics.median(local[large]) - statistics.median(local[small])) / (large - small)
        rows.append((f"per-file cost, {small:,} -> {large:,} files", f"{ours * 1e6:.2f} us = {ours / theirs:.2f}x "
                     f"rsync's {theirs * 1e6:.2f} us", "", True))
    first_ratio = statistics.median(first_1k) / statistics.median(local_1k)
    rows.append(("first sync, 1,000 files / local rsync -a", f"{statistics.median(first_1k):.3f} s / "
                 f"{statistics.median(local_1k):.3f} s = {first_ratio:.2f}x", f"<= {FIRST_GOAL:.1f}x",
                 first_ratio <= FIRST_GOAL))
    first_floor = login + statistics.median(local_1k)
    rows.append(("first sync, 1,000 files / (fresh login + local rsync -a)",
                 f"{statistics.median(first_1k) / first_floor:.2f}x", "", True))
    copy_ours = statistics.median(first_1k) - statistics.median(resyncs[1000])
    copy_theirs = statistics.median(local_1k) - statistics.median(local[1000])
    rows.append(("first sync, 1,000 files: copy part (first - no-change)", f"{copy_ours:.3f} s = "
                 f"{copy_ours / copy_theirs:.2f}x rsync -a's {copy_theirs:.3f} s", "", True))
    rows.append((f"1% changed ({changed_size:,} files): bytes rewritten / changed", f"{ratio_bytes:.3f}x "
                 f"({statistics.median(one_percent):.3f} s)", "<= 1.05x", ratio_bytes <= 1.05))
    rows.append(("1% changed: no unchanged file rewritten", "yes" if exact else "no", "yes", exact))
    rows.append(("no-change re-syncs: files rewritten", str(rewritten_nochange), "0", rewritten_nochange == 0))
    print(f"\n{'figure':<52} {'measured':<40} {'goal':<8}")
    for label, measured, goal, held in rows:
        print(f"{label:<52} {measured:<40} {goal:<8} {'' if not goal else 'PASS' if held else 'FAIL'}")
        ok = ok and held
    total = statistics.median(resyncs[changed_size])
    print(f"\nwhere a no-change re-sync of {changed_size:,} files goes ({total:.3f} s in all; each part timed alone):")
    for label, seconds in parts:
        print(f"  {label:<44} {seconds:.3f} s")
    print(f"  {'rest (session, lock, job files, fork, events)':<44} {total - sum(s for _l, s in parts):.3f} s")
    print(f"load average at the end: {load:.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "load": load}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
