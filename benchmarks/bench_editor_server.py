"""What keeping VS Code's server folder on Drive saves a new runtime: bytes, and seconds, in one run.

    .venv/bin/python benchmarks/bench_editor_server.py [--runs 3] [--scale 1.0] [--mbps 100] [--json FILE]

A ``~/.vscode-server`` is built as VS Code leaves it (``--scale`` shrinks every size, for a quick look):

- ``bin/<commit>/``: the server, about 2,400 files and 190 MiB unpacked (a ``node`` binary of 110 MiB, ``out/``,
  ``node_modules/``), and ``code-<commit>`` (the CLI, 18 MiB): the download is the 57 MiB tarball VS Code fetches;
- ``extensions/``: Python (25 MiB, 400 files), Pylance (55 MiB, 4,500 files: its bundled type stubs), Jupyter and
  its renderers (40 MiB, 600 files), with ``extensions.json``;
- what the backup leaves out: ``data/logs/``, ``data/CachedExtensionVSIXs/`` (a .vsix per extension),
  ``.<commit>.log/.pid/.token``.

File contents are one third random bytes and two thirds repeated text, so they compress about as JS and
binaries do (the tarball comes out near the real one's 57 MiB at scale 1).

Figures (medians of --runs):

1. bytes and files kept on Drive (what `colabssh sync` writes to ``colabssh/home``: an index and one archive per
   unit, ``sync.editor_archives``) against the folder on the runtime and the file-for-file copy of before (one
   file on Drive per file kept);
2. time of the first backup (the sync runner's full backup with this home: the content root holds one small file),
   of a backup with nothing changed, and of the cell's restore of the folder into an empty home
   (``comeback.restore_editor``, under the runner's lock);
3. what a fresh runtime does without it: download the server's tarball and one .vsix per extension (bytes
   measured: the .tar.gz and .zip files made here; the time at --mbps, since there is no internet here) plus
   unpacking them (measured: ``tar xzf`` and ``unzip`` of those files here), against the restore.

The fake Drive is a local folder: Google Drive's mount reads many small files more slowly (each open is a
round trip unless cached), so the restore's time here is its floor, and the number of files on Drive is the figure
that matters there; the bytes are exact.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from colab_bootstrap import comeback  # noqa: E402
from colab_bootstrap.drive_layout import HOME_FOLDER  # noqa: E402
from colab_bootstrap.sync.request import Request  # noqa: E402
from colab_bootstrap.sync.runs import start  # noqa: E402

COMMIT = "f1a4fb101478ce6ec82fe9627c43efbf9e98c813"
MIB = 1 << 20
# (folder inside .vscode-server, files, MiB, one big file's MiB (0: none)): sizes of VS Code 1.9x on linux-x64
SERVER = (f"bin/{COMMIT}", 2400, 190, 110)
CLI = (f"code-{COMMIT}", 18)
EXTENSIONS = [("extensions/ms-python.python-2024.22.0", 400, 25, 0),
              ("extensions/ms-python.vscode-pylance-2024.12.1", 4500, 55, 0),
              ("extensions/ms-toolsai.jupyter-2024.11.0", 600, 40, 0)]


def content_bytes(rng: random.Random, size: int) -> bytes:
    """SIZE bytes that gzip to about a third: random, then text repeated."""
    random_part = rng.randbytes(size // 3)
    text = (b"function f(a,b){return a+b}/* server */\n" * (size // 40 + 1))[: size - len(random_part)]
    return random_part + text


def make_part(root: Path, files: int, mib: float, big_mib: float, rng: random.Random) -> None:
    """FILES files in folders of 50 adding up to MIB MiB, one of them BIG_MIB MiB (node)."""
    rest = max(int((mib - big_mib) * MIB), files)
    if big_mib:
        root.mkdir(parents=True, exist_ok=True)
        (root / "node").write_bytes(content_bytes(rng, int(big_mib * MIB)))
        (root / "node").chmod(0o755)
        files -= 1
    each = rest // max(files, 1)
    for i in range(files):
        folder = root / ("out" if i % 3 else "node_modules") / f"m{i // 50:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.js").write_bytes(content_bytes(rng, max(int(each * rng.uniform(0.2, 1.8)), 64)))


def build(home: Path, scale: float) -> Path:
    rng = random.Random(13)
    server = home / ".vscode-server"
    folder, files, mib, big = SERVER
    make_part(server / folder, max(int(files * scale), 10), mib * scale, big * scale, rng)
    (server / CLI[0]).write_bytes(content_bytes(rng, int(CLI[1] * scale * MIB)))
    (server / CLI[0]).chmod(0o755)
    for folder, files, mib, big in EXTENSIONS:
        make_part(server / folder, max(int(files * scale), 10), mib * scale, big, rng)
    (server / "extensions/extensions.json").write_text(json.dumps([{"identifier": {"id": f}} for f, *_ in EXTENSIONS]))
    (server / "data/Machine").mkdir(parents=True)
    (server / "data/Machine/settings.json").write_text("{}\n")
    logs = server / "data/logs/20241201T101010"
    logs.mkdir(parents=True)
    (logs / "remoteagent.log").write_bytes(content_bytes(rng, 2 * MIB))
    for name in (f".{COMMIT}.log", f".{COMMIT}.pid", f".{COMMIT}.token"):
        (server / name).write_text("x\n")
    return server


def du(root: Path) -> tuple[int, int]:
    files = size = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            size += os.lstat(os.path.join(folder, name)).st_size
            files += 1
    return files, size


def downloads(server: Path, where: Path) -> list[Path]:
    """What a fresh runtime downloads: the server's tarball (with the CLI) and one .vsix (a zip) per extension."""
    where.mkdir()
    tarball = where / "vscode-server-linux-x64.tar.gz"
    subprocess.run(["tar", "czf", str(tarball), "-C", str(server), f"bin/{COMMIT}", CLI[0]], check=True)
    made = [tarball]
    for folder, *_ in EXTENSIONS:
        vsix = where / (Path(folder).name + ".vsix")
        with zipfile.ZipFile(vsix, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted((server / folder).rglob("*")):
                if path.is_file():
                    archive.write(path, "extension/" + str(path.relative_to(server / folder)))
        made.append(vsix)
    return made


def unpack(files: list[Path], target: Path) -> float:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    started = time.perf_counter()
    for path in files:
        if path.suffix == ".gz":
            subprocess.run(["tar", "xzf", str(path), "-C", str(target)], check=True)
        else:
            subprocess.run(["unzip", "-q", "-o", str(path), "-d", str(target / path.stem)], check=True)
    return time.perf_counter() - started


def backup(folder: Path, home: Path, drive: Path, fresh: bool = True) -> tuple[float, dict]:
    """One full backup (FRESH: onto an empty colabssh/home); its time and its summary's ``editors``."""
    if fresh:
        shutil.rmtree(drive / HOME_FOLDER, ignore_errors=True)
    events: list[dict] = []
    started = time.perf_counter()
    code = start(Request(mode="backup", content=folder / "content", drive=drive, home=home), folder / "state",
                 emit=events.append)
    elapsed = time.perf_counter() - started
    if code or not (events[-1].get("editors") or {}).get("files"):
        raise SystemExit(f"the backup failed: {events[-1]}")
    return elapsed, events[-1]["editors"]


def restore(folder: Path, drive: Path) -> float:
    fresh = folder / "fresh-home"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    said: list[str] = []
    started = time.perf_counter()
    with comeback.runner_lock(folder / "state") as lock_fd:  # what restore_at_start does for a missing folder
        comeback.restore_editor(".vscode-server", fresh, drive, lock_fd, said.append)
    elapsed = time.perf_counter() - started
    if not (fresh / ".vscode-server" / f"bin/{COMMIT}/node").is_file():
        raise SystemExit("the restore failed:\n" + "\n".join(said))
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink every size (e.g. 0.1 for a quick look)")
    parser.add_argument("--mbps", type=float, default=100.0, help="download bandwidth assumed, in Mbit/s")
    parser.add_argument("--where", default=None, help="the temp folder's parent (default: the system's)")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="colabssh-bench-editor-", dir=args.where) as tmp:
        folder = Path(tmp)
        home, drive = folder / "home", folder / "drive"
        for path in (home, drive, folder / "content"):
            path.mkdir()
        (folder / "content/notes.txt").write_text("mine\n")
        server = build(home, args.scale)
        files = downloads(server, folder / "downloads")
        (server / "data/CachedExtensionVSIXs").mkdir()
        for vsix in files[1:]:  # VS Code keeps each downloaded .vsix: left out of the backup
            shutil.copy(vsix, server / "data/CachedExtensionVSIXs" / vsix.stem)
        on_runtime = du(server)
        download_bytes = sum(path.stat().st_size for path in files)
        backups, unchanged, restores, unpacks = [], [], [], []
        for _ in range(args.runs):  # interleaved: the same load for all four
            seconds, first = backup(folder, home, drive)
            backups.append(seconds)
            seconds, again = backup(folder, home, drive, fresh=False)
            if again["files_copied"]:
                raise SystemExit(f"a backup with nothing changed wrote archives again: {again}")
            unchanged.append(seconds)
            restores.append(restore(folder, drive))
            unpacks.append(unpack(files, folder / "unpacked"))
        kept = du(drive / HOME_FOLDER / ".vscode-server")
        archives = len(os.listdir(drive / HOME_FOLDER / ".vscode-server" / "archives"))
    download_s = download_bytes * 8 / (args.mbps * 1e6)
    fresh_s = download_s + statistics.median(unpacks)
    restore_s = statistics.median(restores)
    rows = [
        ["server folder on the runtime", f"{on_runtime[0]:,} files, {on_runtime[1] / MIB:.0f} MiB", "", True],
        ["files kept (what a restore brings back)", f"{first['files']:,} files, {first['bytes'] / MIB:.0f} MiB "
         f"({first['bytes'] / on_runtime[1]:.2f}x)", "", True],
        ["on Drive (colabssh/home/.vscode-server)", f"{kept[0]:,} files ({archives} archives + index.json), "
         f"{kept[1] / MIB:.0f} MiB; a file-for-file copy: {first['files']:,} files", "", True],
        ["a fresh runtime downloads", f"{download_bytes / MIB:.0f} MiB in {len(files)} files", "", True],
        ["backup (full sync, first)", f"{statistics.median(backups):.2f} s", "", True],
        ["backup (full sync, nothing changed)", f"{statistics.median(unchanged):.2f} s", "", True],
        ["restore by the cell", f"{restore_s:.2f} s", "", True],
        [f"download at {args.mbps:g} Mbit/s + unpack", f"{download_s:.2f} s + {statistics.median(unpacks):.2f} s "
         f"= {fresh_s:.2f} s", "", True],
        ["restore / (download + unpack)", f"{restore_s / fresh_s:.2f}x", "", True],
    ]
    width = max(len(row[0]) for row in rows)
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, scale {args.scale:g}, "
          f"{args.runs} runs (medians)")
    for figure, measured, _goal, _ok in rows:
        print(f"{figure:<{width}}  {measured}")
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
