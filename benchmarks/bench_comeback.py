"""How long a recycled runtime takes to come back: the cell's start to its connect line with a 1 GiB /content
backup to restore, against the same start with nothing to restore, in one run.

    .venv/bin/python benchmarks/bench_comeback.py [--runs 3] [--gib 1.0] [--where /dev/shm] [--json FILE]

The cell `colabssh bootstrap --tunnel local` prints, run as `python cell.py` on this machine (a new state folder
and an empty content root each run: a recycled runtime), with COLABSSH_DRIVE a local folder holding
``colabssh/content``: three files of a quarter of --gib each (a dataset, a checkpoint) and 100 KiB files for the
rest (code, notebooks, small outputs), about 2,600 files at 1 GiB. Figures (medians of --runs, interleaved):

1. seconds from the start to the connect line with the backup restored (the cell restores it first);
2. the same with an empty Drive folder (nothing to restore);
3. their difference, as the restore's throughput (MiB/s), and the ratio.

The fake Drive is a local folder: Google Drive's mount reads more slowly (its cache fills from the network), so
on Colab the restore's part grows with Drive's read rate; the figure here is the cell's own cost on top of it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONNECT = "colabssh connect "
MIB = 1 << 20


def render_cell(folder: Path) -> Path:
    """The cell `colabssh bootstrap --tunnel local` prints, from this checkout's code (not an installed one's)."""
    key = folder / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    cell = folder / "cell.py"
    subprocess.run([sys.executable, "-c", "import sys; from colabssh_cli.app import main; sys.exit(main(sys.argv[1:]))",
                    "bootstrap", "--tunnel", "local", "--public-key", f"{key}.pub", "--out", str(cell)],
                   check=True, capture_output=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT),
                                                                   "HOME": str(folder)})
    return cell


def make_backup(drive: Path, gib: float) -> tuple[int, int]:
    """A content backup of GIB GiB on the fake Drive: 3 big files, the rest in 100 KiB files; (files, bytes)."""
    rng = random.Random(13)
    backup = drive / "colabssh/content"
    total = int(gib * 1024 * MIB)
    big = total // 4
    (backup / "data").mkdir(parents=True)
    block = rng.randbytes(MIB)
    for name in ("data/train.bin", "data/valid.bin", "checkpoint.pt"):
        with open(backup / name, "wb") as out:
            for _ in range(big // MIB):
                out.write(block)
    small, files = 100 * 1024, 3
    for i in range((total - 3 * big) // small):
        folder = backup / "project" / f"part{i // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{i:05d}.py").write_bytes(rng.randbytes(small))
        files += 1
    return files, 3 * big + (files - 3) * small


def time_to_connect_line(cell: Path, where: Path, drive: Path) -> tuple[float, list[str]]:
    env = {**os.environ, "HOME": str(where / "home"), "COLABSSH_HOME": str(where / "home"),
           "COLABSSH_STATE": str(where / "state"), "COLABSSH_CONTENT": str(where / "content"),
           "COLABSSH_DRIVE": str(drive), "COLABSSH_PORT": "0", "COLABSSH_PROFILE_D": "", "PYTHONUNBUFFERED": "1"}
    (where / "home").mkdir(parents=True)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(cell)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, text=True, env=env)
    assert process.stdout is not None
    elapsed, output = None, []
    for line in process.stdout:
        output.append(line)
        if line.startswith(CONNECT):
            elapsed = time.perf_counter() - started
            break
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    if elapsed is None:
        raise SystemExit("the cell printed no connect line:\n" + "".join(output))
    return elapsed, output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gib", type=float, default=1.0, help="the backup's size in GiB")
    parser.add_argument("--where", default=None, help="the temp folder's parent (default: the system's)")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="colabssh-bench-comeback-", dir=args.where) as tmp:
        folder = Path(tmp)
        cell = render_cell(folder)
        full, empty = folder / "drive-full", folder / "drive-empty"
        empty.mkdir()
        files, size = make_backup(full, args.gib)
        restored, plain = [], []
        for run in range(args.runs):  # interleaved
            where = folder / f"restore-{run}"
            seconds, output = time_to_connect_line(cell, where, full)
            if not any(line.startswith("colabssh: restored ") for line in output):
                raise SystemExit("the cell restored nothing:\n" + "".join(output))
            restored.append(seconds)
            shutil.rmtree(where, ignore_errors=True)
            where = folder / f"plain-{run}"
            plain.append(time_to_connect_line(cell, where, empty)[0])
            shutil.rmtree(where, ignore_errors=True)
    with_restore, without = statistics.median(restored), statistics.median(plain)
    extra = max(with_restore - without, 1e-9)
    rows = [
        ["backup on Drive", f"{files:,} files, {size / MIB:,.0f} MiB", "", True],
        ["start -> connect line, 1 GiB restored" if args.gib == 1 else f"start -> connect line, {args.gib:g} GiB "
         "restored", f"{with_restore:.2f} s", "", True],
        ["start -> connect line, nothing to restore", f"{without:.2f} s", "", True],
        ["the restore's share", f"{extra:.2f} s ({size / MIB / extra:,.0f} MiB/s), {with_restore / without:.1f}x",
         "", True],
    ]
    width = max(len(row[0]) for row in rows)
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.runs} runs (medians); "
          f"restore runs: {', '.join(f'{s:.2f}' for s in restored)} s; plain: {', '.join(f'{s:.2f}' for s in plain)} s")
    for figure, measured, _goal, _ok in rows:
        print(f"{figure:<{width}}  {measured}")
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
