"""`colabssh sync`/`restore`/`pull`/`push` end to end: real rsync on the runtime that the printed cell started,
reached through the real sshd with the config `colabssh connect` wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from colabssh_cli.app import main

BIG = 20 * 1000 * 1000


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and not p.is_symlink()}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Inode and mtime (ns) of every entry: a run that writes nothing leaves them all as they were."""
    return {str(p.relative_to(root)): (p.lstat().st_ino, p.lstat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def cli_process(*args: str) -> subprocess.Popen[str]:
    """The CLI as a process of its own (so it can be killed or interrupted), in its own process group."""
    return subprocess.Popen([sys.executable, "-m", "colabssh_cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env=dict(os.environ))


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "a condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def rsync_pids(marker: str) -> list[int]:
    """The rsync processes whose command line names MARKER (this test's own tree)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"rsync") and marker.encode() in b"\0".join(argv):
            pids.append(int(entry.name))
    return pids


def temp_file_growing(tmp_dir: Path) -> Path | None:
    """rsync's temp file for the transfer under way, once it holds some bytes (not under its final name)."""
    try:
        return next((p for p in tmp_dir.iterdir() if p.is_file() and p.stat().st_size > 0), None)
    except FileNotFoundError:
        return None


def backup_of(connected) -> Path:  # noqa: ANN001
    return connected.runtime.drive / "colabssh" / "content"


def make_tree(content: Path) -> dict[str, bytes]:
    """A varied tree; returns what the backup must hold, byte for byte."""
    files = {
        "project/src/deep/er/model.py": b"import torch\n",
        "with space/caf\u00e9 \u65e5\u672c.txt": "non-ASCII \u00fc".encode(),
        "empty.txt": b"",
        "data/weights.bin": os.urandom(BIG),
        ".colabsshignore": b"# mine\n*.log\n/scratch/\n",
        "notes.md": b"# notes\n",
    }
    left_out = {
        "drive/MyDrive/already-on-drive.txt": b"never copied into itself",
        "sample_data/mnist.csv": b"1,2",
        ".config/gcloud/credentials.db": b"secret",
        "project/src/__pycache__/model.cpython-311.pyc": b"\0",
        ".ipynb_checkpoints/x-checkpoint.ipynb": b"{}",
        "train.log": b"loss", "scratch/tmp.bin": b"tmp",
    }
    for rel, data in {**files, **left_out}.items():
        (content / rel).parent.mkdir(parents=True, exist_ok=True)
        (content / rel).write_bytes(data)
    (content / "hostname-link").symlink_to("/etc/hostname")  # out of the tree: reported, never followed
    (content / "project" / "empty-folder").mkdir()
    return files


def test_first_sync_is_byte_equal_and_a_rerun_writes_nothing(connected, capsys) -> None:  # noqa: ANN001
    expected = make_tree(connected.runtime.content)
    code, out, err = cli(capsys, "sync")
    assert code == 0, err
    backup = backup_of(connected)
    assert tree_bytes(backup) == expected
    assert (backup / "project" / "empty-folder").is_dir()
    assert not (backup / "hostname-link").exists() and not (backup / "hostname-link").is_symlink()
    assert "not copied (symbolic links and special files are skipped): hostname-link" in out
    assert "6 files copied (6 new, 0 changed; " in out and "copied into" in out
    assert "1 symbolic link is not copied" in err
    before = snapshot(connected.runtime.drive)
    code, out, err = cli(capsys, "sync", "--json")
    assert code == 0, err
    report = json.loads(out)  # nothing but JSON on stdout
    assert report["files_copied"] == 0 and report["bytes_copied"] == 0 and report["files_total"] == 6
    assert snapshot(connected.runtime.drive) == before


def test_changes_arrive_deletions_wait_for_delete_and_go_to_the_trash(connected, capsys) -> None:  # noqa: ANN001
    content, backup = connected.runtime.content, backup_of(connected)
    (content / "keep.txt").write_text("v1")
    (content / "old.txt").write_text("delete me")
    assert cli(capsys, "sync")[0] == 0
    (content / "keep.txt").write_text("v2, longer")
    (content / "old.txt").unlink()
    code, out, _ = cli(capsys, "sync", "--dry-run", "--delete")
    assert code == 0 and "would update: keep.txt" in out and "would move to the trash: old.txt" in out
    assert tree_bytes(backup) == {"keep.txt": b"v1", "old.txt": b"delete me"}
    code, out, _ = cli(capsys, "sync")
    assert code == 0 and tree_bytes(backup) == {"keep.txt": b"v2, longer", "old.txt": b"delete me"}
    code, out, err = cli(capsys, "sync", "--delete", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["deleted"] == 1 and tree_bytes(backup) == {"keep.txt": b"v2, longer"}
    trash = Path(report["trash"])
    assert trash.parent.parent.parent == connected.runtime.drive / "colabssh" / "trash"
    assert tree_bytes(trash) == {"old.txt": b"delete me"}


def test_paths_and_to_mirror_the_layout(connected, capsys) -> None:  # noqa: ANN001
    content = connected.runtime.content
    (content / "a" / "b").mkdir(parents=True)
    (content / "a" / "b" / "x.txt").write_text("x")
    (content / "other.txt").write_text("o")
    code, _, err = cli(capsys, "sync", "a/b", "--to", "backups/run1")
    assert code == 0, err
    assert tree_bytes(connected.runtime.drive / "backups" / "run1") == {"a/b/x.txt": b"x"}
    code, _, err = cli(capsys, "sync", "../etc")
    assert code == 2 and "must be a path inside its root" in err and "Traceback" not in err


def test_a_killed_rsync_leaves_no_partial_file_and_a_rerun_completes(connected, capsys) -> None:  # noqa: ANN001
    content, backup = connected.runtime.content, backup_of(connected)
    old, new = os.urandom(BIG), os.urandom(BIG)
    (content / "ckpt.pt").write_bytes(old)
    assert cli(capsys, "sync")[0] == 0
    (content / "ckpt.pt").write_bytes(new)
    later = (content / "ckpt.pt").stat().st_mtime + 10  # same size: the quick check (--modify-window=1) needs it
    os.utime(content / "ckpt.pt", (later, later))
    slow = cli_process("sync", "--bwlimit", "2000")
    partial = wait_until(lambda: temp_file_growing(backup_of(connected) / ".colabssh-tmp"),
                         what="rsync's temp file")
    pids = rsync_pids(str(content))
    assert pids
    for sig in (signal.SIGSTOP, signal.SIGKILL):  # stopped first: no rsync process gets to clean up after itself
        for pid in pids:
            os.kill(pid, sig)
    out, err = slow.communicate(timeout=60)
    assert slow.returncode == 20, err
    assert "interrupted" in err and "Traceback" not in err
    assert (backup / "ckpt.pt").read_bytes() == old  # the old version, never a partial one
    assert Path(str(partial)).stat().st_size < BIG  # the partial copy stayed a temp file
    code, out, err = cli(capsys, "sync")
    assert code == 0, err
    assert (backup / "ckpt.pt").read_bytes() == new
    assert not (backup / ".colabssh-tmp").exists()  # the killed run's temp file gone, and the folder with it


def test_a_second_sync_is_refused_and_ctrl_c_stops_the_first_on_the_runtime(connected, capsys) -> None:  # noqa: ANN001
    content = connected.runtime.content
    (content / "big.bin").write_bytes(os.urandom(BIG))
    first = cli_process("sync", "--bwlimit", "2000")
    wait_until(lambda: temp_file_growing(backup_of(connected) / ".colabssh-tmp"), what="the first sync")
    code, out, err = cli(capsys, "sync")
    assert code == 1 and out == ""
    assert "a sync is already running on this runtime" in err and "--attach" in err
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    code, out, err = cli(capsys, "sync", "--attach", "--json")  # the stopped run, followed to its end
    report = json.loads(out)
    assert report["cancelled"] is True and code == 20
    assert not rsync_pids(str(content))
    assert cli(capsys, "sync")[0] == 0  # the lock was released
    assert (backup_of(connected) / "big.bin").stat().st_size == BIG


def test_a_dropped_ssh_link_does_not_stop_the_sync(connected, capsys) -> None:  # noqa: ANN001
    content = connected.runtime.content
    data = os.urandom(3 * 1000 * 1000)
    (content / "run.bin").write_bytes(data)
    slow = cli_process("sync", "--bwlimit", "3000")
    wait_until(lambda: temp_file_growing(backup_of(connected) / ".colabssh-tmp"), what="the sync")
    os.killpg(slow.pid, signal.SIGKILL)  # the laptop side and its ssh vanish at once
    slow.wait()
    code, out, err = cli(capsys, "sync", "--attach")
    assert code == 0, err
    assert "1 file copied (1 new, 0 changed; " in out
    assert (backup_of(connected) / "run.bin").read_bytes() == data


def test_rsync_failures_become_its_exit_code_and_plain_advice(connected, capsys) -> None:  # noqa: ANN001
    content, backup = connected.runtime.content, backup_of(connected)
    (content / "clash").write_text("a file here")
    (content / "fine.txt").write_text("ok")
    (backup / "clash").mkdir(parents=True)
    (backup / "clash" / "inner.txt").write_text("a folder on Drive")
    code, out, err = cli(capsys, "sync")
    assert code == 23
    assert "the sync ended with rsync exit code 23" in err and "some files could not be copied" in err
    assert "cannot delete non-empty directory: clash" in err
    assert (backup / "fine.txt").read_text() == "ok"
    assert "Traceback" not in err


def test_restore_brings_a_backup_into_a_fresh_runtime(connected, capsys) -> None:  # noqa: ANN001
    content = connected.runtime.content
    (content / "work").mkdir()
    (content / "work" / "train.py").write_text("print('v1')")
    (content / "work" / "results.csv").write_text("1,2")
    assert cli(capsys, "sync")[0] == 0
    (content / "work" / "results.csv").unlink()  # lost with the old runtime
    (content / "work" / "train.py").write_text("print('edited on the new runtime')")
    os.utime(content / "work" / "train.py", (2_000_000_000, 2_000_000_000))
    code, out, err = cli(capsys, "restore")
    assert code == 0, err
    assert (content / "work" / "results.csv").read_text() == "1,2"
    assert (content / "work" / "train.py").read_text() == "print('edited on the new runtime')"
    assert "kept 1 file that is newer on the runtime (--force overwrites them): work/train.py" in out
    code, out, err = cli(capsys, "restore", "--force", "work/train.py")
    assert code == 0 and (content / "work" / "train.py").read_text() == "print('v1')"
    code, _, err = cli(capsys, "restore", "--from", "nothing/here")
    assert code == 2 and "there is no backup at" in err


WITHOUT_FCNTL = ("import sys\n"
                 "sys.modules['fcntl'] = None  # as on Windows: `import fcntl` fails\n"
                 "from colabssh_cli.app import main\n"
                 "code = main(sys.argv[1:])\n"
                 "loaded = {m for m in sys.modules if m.startswith('colab_bootstrap.sync.')}\n"
                 "assert loaded <= {'colab_bootstrap.sync.protocol'}, "
                 "'the laptop imported the POSIX runner'\n"
                 "sys.exit(code)\n")


def cli_without_fcntl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT_FCNTL, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_the_sync_commands_load_where_there_is_no_fcntl() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys; sys.modules['fcntl'] = None\n"
                           "import colabssh_cli.transfer.client, colabssh_cli.commands.sync, "
                           "colab_bootstrap.sync.main, colab_bootstrap.sync.periodic"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("pull", "push", "sync", "restore"):
        done = cli_without_fcntl(command, "--help")
        assert done.returncode == 0 and "Usage: colabssh " + command in done.stdout, done.stderr


def test_without_rsync_or_fcntl_pull_and_push_use_scp_and_sync_works(connected, tmp_path: Path) -> None:  # noqa: ANN001
    """Windows: no local rsync, no fcntl. scp over the same pinned connection, both ways; sync still works."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ssh", "scp"):
        (bin_dir / tool).symlink_to(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip())
    (tmp_path / "model.py").write_text("net = 1")
    done = cli_without_fcntl("push", str(tmp_path / "model.py"), "code", env={"PATH": str(bin_dir)})
    assert done.returncode == 0, done.stderr
    assert (connected.runtime.content / "code" / "model.py").read_text() == "net = 1"
    assert "copied with scp" in done.stderr
    (connected.runtime.content / "code" / "data.csv").write_text("1,2")
    done = cli_without_fcntl("pull", "code", str(tmp_path / "back"), env={"PATH": str(bin_dir)})
    assert done.returncode == 0, done.stderr
    assert tree_bytes(tmp_path / "back") == {"code/model.py": b"net = 1", "code/data.csv": b"1,2"}
    done = cli_without_fcntl("sync", "code", "--json", env={"PATH": str(bin_dir)})  # the runner needs no laptop rsync
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["new_files"] == 2
    assert tree_bytes(backup_of(connected)) == {"code/model.py": b"net = 1", "code/data.csv": b"1,2"}


def read_until(stream, predicate: Callable[[str], bool]) -> str:  # noqa: ANN001
    """Lines of STREAM up to and including the first that PREDICATE accepts."""
    seen = ""
    for line in stream:
        seen += line
        if predicate(line):
            return seen
    raise AssertionError(f"the stream ended first:\n{seen}")


def test_every_keeps_syncing_through_a_failure_until_interrupted(connected) -> None:  # noqa: ANN001
    content, backup = connected.runtime.content, backup_of(connected)
    (content / "a.txt").write_text("a")
    looping = cli_process("sync", "--every", "2", "--json")
    assert looping.stdout is not None and looping.stderr is not None
    first = json.loads(looping.stdout.readline())
    (content / "b.txt").write_text("b")
    (content / "clash").write_text("a file here")  # a folder in the backup: rsync exit 23
    (backup / "clash").mkdir()
    (backup / "clash" / "inner.txt").write_text("x")
    second = json.loads(looping.stdout.readline())
    seen = read_until(looping.stderr, lambda line: "this sync failed" in line)
    seen += read_until(looping.stderr, lambda line: line.startswith("next sync in"))
    looping.send_signal(signal.SIGINT)  # while it waits: the loop ends with the last run's failure
    rest, err = looping.communicate(timeout=60)
    err = seen + err
    assert first["exit"] == 0 and first["new_files"] == 1 and second["exit"] == 23 and second["new_files"] == 1
    assert rest == "" and looping.returncode == 23, err
    assert "colabssh: this sync failed: the sync ended with rsync exit code 23 (some files could not be" in err
    assert err.count("colabssh: error:") == 1 and "Traceback" not in err
    assert "colabssh: error: stopped syncing; the last sync failed: the sync ended with rsync exit code 23" in err
    assert (backup / "b.txt").read_text() == "b"


def test_run_every_goes_on_after_a_failure_and_ends_on_ctrl_c() -> None:
    """The loop's rules on their own: after a success Ctrl-C ends it quietly; after a failure, with that failure;
    bad input and a missing tool end it at once; Ctrl-C during a run is not swallowed."""
    from colabssh_cli.errors import BAD_INPUT, MISSING_TOOL, ColabsshError
    from colabssh_cli.transfer.client import SyncOutcome, run_every

    def loop(exits: list[object]) -> tuple[list[str], object]:
        """Run the loop over runs ending with EXITS (an int: rsync's code; an exception: raised); Ctrl-C comes
        in the wait after the last one."""
        log: list[str] = []
        runs = iter(exits)

        def run() -> SyncOutcome:
            code = next(runs)
            if isinstance(code, BaseException):
                raise code
            return SyncOutcome({"event": "result", "exit": code, "mode": "backup", "advice": f"advice {code}"})

        def wait(seconds: float) -> None:
            log.append(f"wait {seconds}")
            if log.count(f"wait {seconds}") == len(exits):
                raise KeyboardInterrupt

        try:
            run_every(5, run, lambda o: log.append(f"show {o.report['exit']}"),
                      lambda exc: log.append(f"failed {exc.exit_code}"), lambda s: log.append("waiting"), wait)
        except (ColabsshError, KeyboardInterrupt) as exc:
            return log, exc
        return log, None

    log, ended = loop([0, 23, 0])
    assert ended is None and log == ["show 0", "waiting", "wait 5", "show 23", "failed 23", "waiting", "wait 5",
                                     "show 0", "waiting", "wait 5"]
    log, ended = loop([0, 24])
    assert isinstance(ended, ColabsshError) and ended.exit_code == 24 and ended.hint == "advice 24"
    assert ended.message == "stopped syncing; the last sync failed: the sync ended with rsync exit code 24"
    for code in (BAD_INPUT, MISSING_TOOL):
        log, ended = loop([0, ColabsshError("no", "", code), 0])
        assert isinstance(ended, ColabsshError) and ended.exit_code == code and log[-1] == "wait 5"
    log, ended = loop([0, KeyboardInterrupt()])
    assert isinstance(ended, KeyboardInterrupt) and log[-1] == "wait 5"


def test_the_cell_can_back_up_on_its_own(start_runtime, render, tmp_path: Path) -> None:  # noqa: ANN001
    where = tmp_path / "runtime"
    (where / "content" / "nb").mkdir(parents=True)
    (where / "content" / "nb" / "analysis.ipynb").write_text("{}")
    running = start_runtime(cell=render("local", "--sync-every", "1"), where=where)
    line = running.wait_for(lambda text: "periodic sync:" in text, timeout=60)
    assert line is not None and "1 file copied" in line, running.output
    assert (running.drive / "colabssh" / "content" / "nb" / "analysis.ipynb").read_text() == "{}"
    assert "backing" in running.output and "every 1 s" in running.output


def test_the_summary_says_honestly_where_the_data_is() -> None:
    from colabssh_cli.commands.transfer_view import summary_lines
    from colabssh_cli.transfer.client import SyncOutcome

    report = {"event": "result", "exit": 0, "mode": "backup", "dry_run": False, "source": "/content",
              "dest": "/content/drive/MyDrive/colabssh/content", "trash": None, "drive_cache": True,
              "new_files": 2, "changed_files": 1, "new_folders": 0, "deleted": 0, "files_copied": 3,
              "bytes_copied": 3_500_000, "files_total": 10, "skipped": [], "kept_newer": [], "kept_newer_count": 0,
              "seconds": 1.25}
    lines = summary_lines(SyncOutcome(report))
    assert lines[0] == ("synced /content -> /content/drive/MyDrive/colabssh/content: 3 files copied (2 new, 1 "
                        "changed; 3.3 MiB), 7 unchanged, in 1.2 s")
    assert "written to Drive's local cache on the runtime; Google Drive is still uploading" in lines[-1]
    assert not any("On Google Drive" in line or "uploaded" in line for line in lines)
    off_colab = summary_lines(SyncOutcome({**report, "drive_cache": False}))
    assert off_colab[-1] == "copied into /content/drive/MyDrive/colabssh/content"
