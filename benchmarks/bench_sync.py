"""How fast `colabssh sync` is, against `cp -r` (the guide's way) and against the floor.

    .venv/bin/python benchmarks/bench_sync.py [--small 10000] [--large 3] [--large-mb 30] [--runs 7] [--where DIR]

One run of the printed cell (tunnel: local) on this machine, connected with `colabssh connect`; a tree of
10,000 small files (1-4 KB, 100 folders) plus a few large ones in the content root. Timed, each as the whole
`colabssh sync` command a user runs (CLI start, one ssh command, the runner, rsync):

1. first sync (empty backup), and `cp -r` of the same tree into a fresh folder beside it, each timed until
   the data is on disk (os.sync());
2. no-change re-sync (median of --runs), against the floor: one fresh OpenSSH login
   (`ssh -o ControlPath=none ALIAS true`) plus a plain local no-change `rsync -a` of the same tree
   (each a median of --runs); goal: at most 1.5x the floor, and no file in the backup rewritten;
3. re-sync with 1% of the small files changed; goal: the bytes rewritten in the backup (files whose inode
   changed: rsync writes a temp file and renames it) at most 1.05x the size of the changed files.

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


def make_tree(root: Path, small: int, large: int, large_mb: int) -> None:
    rng = random.Random(4)
    for i in range(small):
        folder = root / "work" / f"d{i % 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.txt").write_bytes(rng.randbytes(rng.randint(1000, 4000)))
    for i in range(large):
        (root / "work" / f"large{i}.bin").write_bytes(os.urandom(large_mb * 1000 * 1000))


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    found = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            found[os.path.relpath(path, root)] = (info.st_ino, info.st_mtime_ns, info.st_size)
    return found


def timed(argv: list[str], env: dict[str, str], flush: bool = False) -> tuple[float, str]:
    """Seconds ARGV took; with FLUSH, until what it wrote is on disk (os.sync), so full copies compare fairly."""
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if flush:
        os.sync()
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=3)
    parser.add_argument("--large-mb", type=int, default=30)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--where", type=Path, default=None,
                        help="Folder for the runtime's content, Drive and state (default: the system temp folder; "
                        "/dev/shm takes the disk's write-back noise out)")
    args = parser.parse_args()

    from tests.cellrunner import start_cell

    rsync_version = subprocess.run(["rsync", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
          f"{platform.python_version()}, {rsync_version}")
    tmp = Path(tempfile.mkdtemp(prefix="colabssh-bench-sync-", dir=args.where))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLABSSH_", "NGROK_", "PYNGROK_"))}
    env.update({"HOME": str(tmp / "home"), "NO_COLOR": "1"})
    (tmp / "home").mkdir()
    colabssh = [str(BIN / "colabssh")]
    cell_file = tmp / "cell.py"
    subprocess.run([*colabssh, "bootstrap", "--tunnel", "local", "--out", str(cell_file)], env=env, check=True,
                   capture_output=True)
    os.environ.update({"HOME": env["HOME"]})
    cell = start_cell(cell_file, tmp / "runtime")
    ok = True
    try:
        subprocess.run([*colabssh, "connect", cell.code, "--no-open"], env=env, check=True, capture_output=True)
        make_tree(cell.content, args.small, args.large, args.large_mb)
        tree = snapshot(cell.content)
        total = sum(size for _ino, _mtime, size in tree.values())
        print(f"tree: {len(tree):,} files, {total / 1e6:.1f} MB ({args.small:,} small, {args.large} x "
              f"{args.large_mb} MB)\n")
        backup = cell.drive / "colabssh" / "content"
        sync = [*colabssh, "sync", "--json"]

        os.sync()  # written-back pages from making the tree would otherwise slow whatever runs next
        cp_time, _ = timed(["cp", "-r", str(cell.content / "work"), str(cell.drive / "cp-copy")], env, flush=True)
        first, out = timed(sync, env, flush=True)
        report = json.loads(out)
        assert report["files_copied"] == len(tree), report
        mirror = tmp / "mirror"
        subprocess.run(["rsync", "-a", f"{cell.content}/", f"{mirror}/"], check=True)
        os.sync()

        config = str(Path(env["HOME"]) / ".ssh" / "config")
        before = snapshot(backup)
        resyncs, logins, local = [], [], []
        for _ in range(args.runs):  # interleaved, so that the machine's mood hits both sides alike
            elapsed, out = timed(sync, env)
            resyncs.append(elapsed)
            assert json.loads(out)["files_copied"] == 0
            logins.append(timed(["ssh", "-F", config, "-o", "ControlPath=none", "colab", "true"], env)[0])
            local.append(timed(["rsync", "-a", f"{cell.content}/", f"{mirror}/"], env)[0])
        rewritten_nochange = sum(1 for k, v in snapshot(backup).items() if before.get(k) != v)
        floor = statistics.median(logins) + statistics.median(local)
        resync = statistics.median(resyncs)

        rng = random.Random(7)
        small_files = sorted(k for k in tree if k.endswith(".txt"))
        one_percent_times, changed_total, rewritten_total, copied_total, exact = [], 0, 0, 0, True
        for _ in range(args.runs):  # each time another 1% of the small files
            changed = rng.sample(small_files, max(1, args.small // 100))
            for rel in changed:
                with open(cell.content / rel, "ab") as handle:
                    handle.write(b"changed" * 10)
            changed_total += sum((cell.content / rel).stat().st_size for rel in changed)
            before = snapshot(backup)
            os.sync()
            elapsed, out = timed(sync, env)
            one_percent_times.append(elapsed)
            copied_total += json.loads(out)["bytes_copied"]
            after = snapshot(backup)
            rewritten = [k for k, v in after.items() if before.get(k, (None,))[0] != v[0]]
            rewritten_total += sum(after[k][2] for k in rewritten)
            exact = exact and sorted(rewritten) == sorted(changed)
        one_percent = statistics.median(one_percent_times)

        rows = [
            ("cp -r (the guide's way), full copy + flush", cp_time, ""),
            ("colabssh sync, first + flush", first, f"{first / cp_time:.2f}x cp -r"),
            ("floor: fresh ssh login", statistics.median(logins), ""),
            ("floor: local no-change rsync -a", statistics.median(local), ""),
            ("floor: login + local rsync", floor, ""),
            ("colabssh sync, no change (median)", resync,
             f"{resync / floor:.2f}x floor, {resync / cp_time:.2f}x cp -r"),
            ("colabssh sync, 1% changed (median)", one_percent,
             f"{one_percent / floor:.2f}x floor, {one_percent / cp_time:.2f}x cp -r"),
        ]
        for label, seconds, note in rows:
            print(f"{label:<40} {seconds:8.3f} s   {note}")
        ratio_bytes = rewritten_total / changed_total
        print(f"\nno-change re-sync: {rewritten_nochange} file(s) rewritten in the backup")
        print(f"1% changed ({args.runs} runs): {changed_total:,} bytes in the changed files; {rewritten_total:,} "
              f"bytes rewritten in the backup ({ratio_bytes:.3f}x); rsync copied {copied_total:,} bytes")
        goals = [("no-change re-sync <= 1.5x the floor", resync <= 1.5 * floor),
                 ("no-change re-sync rewrites no file", rewritten_nochange == 0),
                 ("1% changed: bytes rewritten <= 1.05x the changed files", ratio_bytes <= 1.05),
                 ("1% changed: no unchanged file rewritten", exact)]
        print()
        for label, held in goals:
            print(f"{'PASS' if held else 'FAIL'}  {label}")
            ok = ok and held
    finally:
        cell.stop()
        subprocess.run(["ssh", "-F", str(Path(env["HOME"]) / ".ssh" / "config"), "-O", "exit", "colab"], env=env,
                       capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
