"""The runtime half of `colabssh sync` (the package colab_bootstrap/sync/), with real rsync on temp trees, no SSH."""

from __future__ import annotations

import errno
import json
import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from colab_bootstrap.sync import output as sync_output
from colab_bootstrap.sync import plan as sync_plan
from colab_bootstrap.sync import worker as sync_worker
from colab_bootstrap.sync.config import SPACE_MARGIN
from colab_bootstrap.sync.drive import check_drive, mount_fstype, on_colab
from colab_bootstrap.sync.jobs import Jobs, worker_pid
from colab_bootstrap.sync.periodic import start_periodic
from colab_bootstrap.sync.plan import ALWAYS_EXCLUDED, TMP_FOLDER, ensure_rsync, prepare
from colab_bootstrap.sync.protocol import (
    EXIT_BAD_INPUT,
    EXIT_LOST,
    EXIT_NO_DRIVE,
    LogParser,
    SyncRefused,
    clean_relative,
)
from colab_bootstrap.sync.request import Request
from colab_bootstrap.sync.runs import start
from colab_bootstrap.sync.scan import Excluder, has_file, ignore_patterns
from tests.shipped import BUNDLE, PAYLOAD, boot_argv, feed


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    content, drive, state = tmp_path / "content", tmp_path / "drive", tmp_path / "state"
    for folder in (content, drive, state):
        folder.mkdir()
    return {"content": content, "drive": drive, "state": state}


def run_runner(tree: dict[str, Path], *args: str, env: dict[str, str] | None = None) -> tuple[int, list[dict]]:
    """The runner as the laptop runs it (BOOT, the bundle on stdin), JSON events on stdout."""
    argv = boot_argv("start", "--state", str(tree["state"]), "--content",
            str(tree["content"]), "--drive", str(tree["drive"]), *args)
    done = subprocess.run(argv, input=PAYLOAD, capture_output=True, timeout=60,
                          env={**os.environ, **(env or {})})
    events = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert done.stderr == b"", done.stderr.decode()
    return done.returncode, events


def in_process_run(tree: dict[str, Path], request: Request) -> list[dict]:
    """A run in this process (so what a test patches holds), its events collected."""
    events: list[dict] = []
    assert start(request, tree["state"], emit=events.append) in (0, EXIT_BAD_INPUT), events
    return events


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------- Drive checks (E3)
def write_mountinfo(path: Path, entries: list[tuple[str, str]]) -> Path:
    lines = [f"{20 + i} 1 0:{40 + i} / {point.replace(' ', chr(92) + '040')} rw,relatime shared:1 - {fstype} src rw"
             for i, (point, fstype) in enumerate(entries)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_on_colab_only_a_fuse_drive_mount_counts(tmp_path: Path) -> None:
    drive = tmp_path / "my drive" / "MyDrive"
    drive.mkdir(parents=True)
    plain = write_mountinfo(tmp_path / "plain", [("/", "overlay"), (str(tmp_path), "ext4")])
    with pytest.raises(SyncRefused) as refused:
        check_drive(drive, colab=True, mountinfo=plain)
    assert refused.value.kind == "no_drive" and "not on Google Drive's mount (ext4)" in refused.value.message
    mounted = write_mountinfo(tmp_path / "mounted", [("/", "overlay"), (str(tmp_path / "my drive"), "fuse.drive")])
    assert mount_fstype(drive, mounted) == "fuse.drive"
    assert check_drive(drive, colab=True, mountinfo=mounted) is True
    assert on_colab({}, mounted) is True and on_colab({}, plain) is False


def test_off_colab_an_existing_folder_counts_and_a_missing_one_is_refused(tmp_path: Path) -> None:
    assert check_drive(tmp_path, colab=False) is False
    with pytest.raises(SyncRefused) as refused:
        check_drive(tmp_path / "nope", colab=False)
    assert refused.value.exit_code == EXIT_NO_DRIVE


def test_a_runtime_on_colab_without_the_drive_mount_refuses_and_writes_nothing(tree: dict[str, Path]) -> None:
    (tree["content"] / "notes.txt").write_text("x")
    code, events = run_runner(tree, env={"COLAB_RELEASE_TAG": "release-colab_20250101"})
    assert code == EXIT_NO_DRIVE
    assert events[-1]["event"] == "error" and events[-1]["kind"] == "no_drive"
    assert list(tree["drive"].iterdir()) == []


# ------------------------------------------------------------------------------------------- refusals before copying
def test_delete_with_an_empty_source_is_refused_and_the_backup_is_untouched(tree: dict[str, Path]) -> None:
    backup = tree["drive"] / "colabssh" / "content"
    backup.mkdir(parents=True)
    (backup / "precious.txt").write_text("keep me")
    (tree["content"] / "sample_data").mkdir()  # what a fresh runtime has: excluded, so nothing to copy
    (tree["content"] / "sample_data" / "mnist.csv").write_text("1,2")
    code, events = run_runner(tree, "--delete")
    assert code == EXIT_BAD_INPUT
    assert "refusing --delete" in events[-1]["message"] and "restore" in events[-1]["hint"]
    assert tree_bytes(tree["drive"]) == {"colabssh/content/precious.txt": b"keep me"}


def test_missing_source_path_and_escaping_paths_are_refused(tree: dict[str, Path]) -> None:
    code, events = run_runner(tree, "--", "no-such-folder")
    assert code == EXIT_BAD_INPUT and "no-such-folder does not exist" in events[-1]["message"]
    with pytest.raises(SyncRefused):
        clean_relative("../etc", "the path")
    with pytest.raises(SyncRefused):
        clean_relative("/etc", "the path")
    assert clean_relative("./a//b/", "the path") == "a/b"


def test_a_backup_folder_overlapping_the_trash_is_refused(tree: dict[str, Path]) -> None:
    for folder in ("colabssh", "colabssh/trash/x"):
        with pytest.raises(SyncRefused) as refused:
            prepare(Request("backup", tree["content"], tree["drive"], folder=folder))
        assert "overlaps colabssh's trash folder" in refused.value.message


def test_too_little_free_space_is_refused_before_any_copy(tree: dict[str, Path]) -> None:
    (tree["content"] / "model.bin").write_bytes(b"\0" * 4096)

    def tiny_disk(path: Path) -> tuple[int, int, int]:
        return (1 << 30, (1 << 30) - 1000, 1000)

    with pytest.raises(SyncRefused) as refused:
        prepare(Request("backup", tree["content"], tree["drive"]), disk_usage=tiny_disk)
    assert refused.value.kind == "no_space" and "4.0 KiB to copy" in refused.value.message
    assert list(tree["drive"].iterdir()) == []


def test_the_free_space_check_counts_only_what_differs(tree: dict[str, Path]) -> None:
    """A tight disk is fine when the backup already has the big file: only changed bytes need room. The bound (the
    bytes in use on the source's filesystem) fails here, so rsync's own dry run gives the exact figure."""
    big = tree["content"] / "big.bin"
    big.write_bytes(b"\1" * 300_000)
    assert run_runner(tree)[0] == 0
    (tree["content"] / "small.txt").write_text("new")
    (tree["content"] / "sample_data").mkdir()  # excluded: rsync's figure leaves it out
    (tree["content"] / "sample_data" / "mnist.csv").write_bytes(b"0" * 5000)
    room = SPACE_MARGIN + 1000

    def tight_disk(path: Path) -> tuple[int, int, int]:
        return (1 << 40, (1 << 40) - room, room)

    plan = prepare(Request("backup", tree["content"], tree["drive"]), disk_usage=tight_disk)
    assert plan.to_copy == 3 and plan.scan is None
    (tree["content"] / "more.bin").write_bytes(b"\2" * 2000)
    with pytest.raises(SyncRefused) as refused:
        prepare(Request("backup", tree["content"], tree["drive"]), disk_usage=tight_disk)
    assert refused.value.kind == "no_space" and "2.0 KiB to copy" in refused.value.message


def test_a_roomy_disk_needs_no_walk_of_the_tree(tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A backup's checks make no call per file: no scan, no exclude test, no rsync dry run when every place has
    room for all the bytes in use on the source's filesystem."""
    for i in range(50):
        (tree["content"] / f"f{i}.txt").write_text("x")
    used: list[Path] = []

    def roomy_disk(path: Path) -> tuple[int, int, int]:
        used.append(path)
        return (1 << 40, 1 << 30, 1 << 39)

    def per_file(*args: object, **kwargs: object) -> None:
        raise AssertionError("a per-file call on a backup")

    for name in ("scan", "Excluder", "has_file", "bytes_to_copy"):
        monkeypatch.setattr(sync_plan, name, per_file)
    plan = prepare(Request("backup", tree["content"], tree["drive"]), disk_usage=roomy_disk)
    assert plan.scan is None and plan.to_copy is None and plan.warnings == []
    assert used == [tree["content"], tree["drive"]]  # the source's bytes in use, then the destination's room
    with pytest.raises(AssertionError, match="a per-file call"):  # --delete looks for one file to copy
        prepare(Request("backup", tree["content"], tree["drive"], delete=True), disk_usage=roomy_disk)


def test_many_small_files_warn_but_do_not_refuse(tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted from rsync's itemized lines as it copies (their size rides along), and warned about once, as soon
    as a threshold is passed (with the counts so far: here 50 to 60, as the log is read while rsync writes it)."""
    monkeypatch.setattr(sync_output, "MANY_IN_ONE_FOLDER", 50)
    many = tree["content"] / "frames"
    many.mkdir()
    for i in range(60):
        (many / f"{i:03d}.png").write_bytes(b"p")
    (tree["content"] / "big.bin").write_bytes(b"\0" * (1 << 20))  # not small
    events = in_process_run(tree, Request("backup", tree["content"], tree["drive"]))
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert len(warnings) == 1, warnings
    found = re.fullmatch(r"(\d+) small files so far; frames alone holds (\d+) entries: Google Drive is slow with "
                         r"many small files, and its mount can time out on big folders", warnings[0])
    assert found and 50 <= int(found.group(2)) <= int(found.group(1)) <= 60, warnings
    assert events[-1]["event"] == "result"
    assert events[-1]["files_copied"] == 61
    events = in_process_run(tree, Request("backup", tree["content"], tree["drive"]))  # nothing copied: no warning
    assert not [e for e in events if e["event"] == "warning"] and events[-1]["files_copied"] == 0


def test_over_ten_thousand_small_files_copied_warn(tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync_output, "MANY_SMALL_FILES", 40)
    for folder in range(3):
        (tree["content"] / f"d{folder}").mkdir()
        for i in range(15):
            (tree["content"] / f"d{folder}" / f"{i}.txt").write_text("t")
    events = in_process_run(tree, Request("backup", tree["content"], tree["drive"], dry_run=True))
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert len(warnings) == 1 and re.match(r"4[0-5] small files so far: Google Drive is slow", warnings[0]), warnings
    monkeypatch.setattr(sync_output, "MANY_SMALL_FILES", 46)
    events = in_process_run(tree, Request("backup", tree["content"], tree["drive"]))
    assert not [e for e in events if e["event"] == "warning"] and events[-1]["files_copied"] == 45


# ------------------------------------------------------------------------------------------- rsync missing
def test_missing_rsync_is_installed_with_apt_get_as_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """apt-get is a stand-in (it would need the internet); what it 'installs' is the real rsync."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real_rsync = subprocess.run(["which", "rsync"], capture_output=True, text=True).stdout.strip()
    apt = bin_dir / "apt-get"
    apt.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/apt.log\n"
                   f"[ \"$1\" = install ] && /bin/ln -s {real_rsync} {bin_dir}/rsync\nexit 0\n")
    apt.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    said: list[str] = []
    assert ensure_rsync(said.append, is_root=True) == str(bin_dir / "rsync")
    assert "installing it with apt-get" in said[0]
    assert (tmp_path / "apt.log").read_text().splitlines() == ["update -qq", "install -y -qq rsync"]
    (bin_dir / "rsync").unlink()
    with pytest.raises(SyncRefused) as refused:
        ensure_rsync(said.append, is_root=False)
    assert refused.value.kind == "no_rsync" and "apt-get install rsync" in refused.value.hint


# ------------------------------------------------------------------------------------------- runs
def test_runs_copy_mirror_and_keep_deletions_in_a_dated_trash(tree: dict[str, Path]) -> None:
    content = tree["content"]
    (content / "a" / "b").mkdir(parents=True)
    (content / "a" / "b" / "keep.txt").write_text("v1")
    (content / "gone.txt").write_text("bye")
    (content / "__pycache__").mkdir()
    (content / "__pycache__" / "x.pyc").write_bytes(b"c")
    code, events = run_runner(tree)
    assert code == 0
    report = events[-1]
    assert report["event"] == "result" and report["new_files"] == 2 and report["files_total"] == 2
    backup = tree["drive"] / "colabssh" / "content"
    assert tree_bytes(backup) == {"a/b/keep.txt": b"v1", "gone.txt": b"bye"}
    (content / "gone.txt").unlink()
    (content / "a" / "b" / "keep.txt").write_text("v2")
    later = (content / "a" / "b" / "keep.txt").stat().st_mtime + 10  # same size: rsync's quick check needs the time
    os.utime(content / "a" / "b" / "keep.txt", (later, later))
    code, events = run_runner(tree, "--dry-run", "--delete")
    changes = {(e["change"], e["path"]) for e in events if e["event"] == "item"}
    assert ("*deleting", "gone.txt") in changes and any(p == "a/b/keep.txt" for _, p in changes)
    assert tree_bytes(backup) == {"a/b/keep.txt": b"v1", "gone.txt": b"bye"}  # a dry run changes nothing
    code, events = run_runner(tree, "--delete")
    assert code == 0 and events[-1]["deleted"] == 1 and events[-1]["changed_files"] == 1
    trash = Path(events[-1]["trash"])
    assert trash.is_relative_to(tree["drive"] / "colabssh" / "trash")
    assert tree_bytes(trash) == {"gone.txt": b"bye", "a/b/keep.txt": b"v1"}  # deleted and replaced, kept
    assert tree_bytes(backup) == {"a/b/keep.txt": b"v2"}


def test_restore_keeps_newer_files_unless_forced(tree: dict[str, Path]) -> None:
    content = tree["content"]
    (content / "train.py").write_text("backed up")
    (content / "data.csv").write_text("1,2,3")
    assert run_runner(tree)[0] == 0
    (content / "data.csv").unlink()
    (content / "train.py").write_text("edited since")
    os.utime(content / "train.py", (2_000_000_000, 2_000_000_000))
    code, events = run_runner(tree, "--mode", "restore")
    assert code == 0 and events[-1]["kept_newer"] == ["train.py"] and events[-1]["kept_newer_count"] == 1
    assert (content / "data.csv").read_text() == "1,2,3" and (content / "train.py").read_text() == "edited since"
    assert not (content / TMP_FOLDER).exists()
    code, events = run_runner(tree, "--mode", "restore", "--force")
    assert code == 0 and (content / "train.py").read_text() == "backed up"


def test_the_log_parser_reads_real_rsync_output(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "d").mkdir(parents=True)
    (source / "d" / "f").write_bytes(b"x" * 1000)
    (source / "link").symlink_to("/etc/hostname")
    argv = ["rsync", "-rt", "--itemize-changes", "--info=progress2,stats2", f"{source}/", f"{tmp_path}/dst/"]
    output = subprocess.run(argv, capture_output=True, env={**os.environ, "LC_ALL": "C"}).stdout
    events: list[dict] = []
    parser = LogParser(events.append)
    for i in range(0, len(output), 7):  # fed in awkward pieces, as a growing log is read
        parser.feed(output[i:i + 7])
    parser.close()
    assert parser.skipped == ["link"] and parser.new_files == 1
    assert parser.stats["files_copied"] == 1 and parser.stats["bytes_copied"] == 1000
    assert parser.stats["files_total"] == 1
    kinds = [e["event"] for e in events]
    assert "progress" in kinds and {"event": "item", "change": ">f+++++++++", "path": "d/f"} in events
    assert not parser.messages


def test_excluder_follows_rsyncs_pattern_rules() -> None:
    rules = Excluder(["/drive/", "__pycache__/", "*.tmp", "logs/*.txt", "- secret", "+ keep", "# note",
                                  "+ x/logs/b.txt", "keep"])
    assert rules.excluded("drive", True) and not rules.excluded("p/drive", True)
    assert rules.excluded("x/y/__pycache__", True) and not rules.excluded("x/__pycache__", False)
    assert rules.excluded("a/b.tmp", False) and rules.excluded("x/logs/a.txt", False)
    assert rules.excluded("secret", False) and not rules.excluded("keep", False)  # "+ keep" came first
    assert rules.excluded("x/logs/b.txt", False)  # "logs/*.txt" came before its "+"


def test_mountinfo_escapes_and_longest_prefix(tmp_path: Path) -> None:
    info = write_mountinfo(tmp_path / "m", [("/", "overlay"), ("/content/drive", "fuse.drive"),
                                           ("/content/drive/My Drive/x", "tmpfs")])
    assert mount_fstype(Path("/content/drive/MyDrive"), info) == "fuse.drive"
    assert mount_fstype(Path("/content/drive/My Drive/x/y"), info) == "tmpfs"
    assert mount_fstype(Path("/content/drivex"), info) == "overlay"


def test_the_lock_is_held_by_a_worker_and_released_when_it_dies(tree: dict[str, Path]) -> None:
    jobs = Jobs(tree["state"])
    fd = jobs.try_lock()
    assert fd is not None and jobs.try_lock() is None
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                              pass_fds=(fd,))
    os.close(fd)
    assert jobs.is_locked()  # the child's inherited descriptor holds it
    holder.kill()
    holder.wait()
    assert not jobs.is_locked()
    assert stat.S_IMODE(jobs.lock.stat().st_mode) == 0o600


def test_a_drive_folder_inside_the_content_root_is_never_copied_into_itself(tmp_path: Path) -> None:
    content = tmp_path / "content"
    drive = content / "backups" / "drive"  # e.g. COLABSSH_DRIVE=/content/backups/drive off Colab
    drive.mkdir(parents=True)
    (content / "backups" / "keep.txt").write_text("mine")
    (content / "notes.txt").write_text("n")
    tree = {"content": content, "drive": drive, "state": tmp_path / "state"}
    for _ in range(2):  # the second run must not find the first run's backup as new files
        code, events = run_runner(tree)
        assert code == 0 and events[-1]["files_total"] == 2
    assert tree_bytes(drive / "colabssh" / "content") == {"backups/keep.txt": b"mine", "notes.txt": b"n"}
    inner = drive / "colabssh" / "content" / "x"
    inner.mkdir()
    with pytest.raises(SyncRefused) as refused:  # a content root inside the backup: it would copy into itself
        prepare(Request("backup", inner, drive))
    assert "is inside the backup folder" in refused.value.message


def test_a_killed_worker_is_reported_as_lost_and_releases_the_lock(tree: dict[str, Path]) -> None:
    (tree["content"] / "big.bin").write_bytes(os.urandom(5_000_000))
    argv = boot_argv("start", "--state", str(tree["state"]), "--content",
            str(tree["content"]), "--drive", str(tree["drive"]), "--bwlimit", "500")
    follower = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert follower.stdin is not None and follower.stdout is not None
    feed(follower)
    begin, start = json.loads(follower.stdout.readline()), json.loads(follower.stdout.readline())
    assert begin["event"] == "begin" and begin["pid"] == follower.pid and start["event"] == "start"
    job = tree["state"] / "sync" / "jobs" / start["job"]
    jobs = Jobs(tree["state"])
    deadline = time.monotonic() + 30
    while worker_pid(job) is None or not (job / "rsync.pid").exists():
        assert time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.01)
    worker = worker_pid(job)
    rsync_group = int((job / "rsync.pid").read_text())
    assert worker is not None and jobs.is_locked()
    os.kill(worker, signal.SIGKILL)
    os.killpg(rsync_group, signal.SIGKILL)
    out, err = follower.communicate(timeout=30)
    report = json.loads(out.decode().splitlines()[-1])
    assert follower.returncode == EXIT_LOST, err
    assert report["lost"] is True and "killed" in report["advice"]
    assert not jobs.is_locked()
    assert not (tree["drive"] / "colabssh" / "content" / "big.bin").exists()


# ------------------------------------------------------------------------------------------- the cell's periodic sync
def run_boot(*args: str) -> tuple[int, list[dict]]:
    """Any runner command (attach, cancel...) as the laptop runs it."""
    done = subprocess.run(boot_argv(*args), input=PAYLOAD, capture_output=True,
                          timeout=60)
    assert done.stderr == b"", done.stderr.decode()
    return done.returncode, [json.loads(line) for line in done.stdout.decode().splitlines()]


def periodic_reports(tree: dict[str, Path], every: int = 1) -> tuple[threading.Thread, queue.Queue[str]]:
    """start_periodic in this process, as the cell's kernel runs it; its notebook lines arrive in the queue."""
    said: queue.Queue[str] = queue.Queue()
    thread = start_periodic(tree["content"], tree["drive"], tree["state"], every, said.put)
    assert thread is not None
    return thread, said


def next_report(said: queue.Queue[str]) -> str:
    while True:
        line = said.get(timeout=30)
        if "periodic sync:" in line:
            return line


@pytest.mark.parametrize("failing", ["has_room", "clear_tmp"])
def test_a_periodic_run_that_fails_releases_the_lock(tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                                     failing: str) -> None:
    """Drive's FUSE mount going bad mid-run (ENOTCONN) must not leave the kernel holding the lock for good."""
    (tree["content"] / "notes.txt").write_text("n")

    def broken_mount(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")

    where = {"has_room": sync_plan, "clear_tmp": sync_worker}[failing]  # the module that calls it
    with monkeypatch.context() as broken:  # only the broken mount ends here
        broken.setattr(where, failing, broken_mount)
        thread, said = periodic_reports(tree)
        report = next_report(said)
        start_periodic(tree["content"], tree["drive"], tree["state"], 0, said.put)  # stop the timer
        thread.join(timeout=30)
    assert "not synced: the sync failed: OSError: [Errno 107] Transport endpoint is not connected" in report
    assert not Jobs(tree["state"]).is_locked()
    job = Jobs(tree["state"]).current_job()
    if failing == "clear_tmp":  # the job was made: it records the failure, and --attach replays it
        assert job is not None and json.loads((job / "result.json").read_text())["exit"] == 1
        code, events = run_boot("attach", "--state", str(tree["state"]))
        assert code == 1 and "Transport endpoint is not connected" in " ".join(events[-1]["messages"])
    else:
        assert job is None
    code, events = run_runner(tree)  # the laptop's `colabssh sync` afterwards
    assert code == 0, events[-1]
    assert tree_bytes(tree["drive"] / "colabssh" / "content") == {"notes.txt": b"n"}


@pytest.mark.parametrize("how", ["sync off", "no Drive"])
def test_a_cell_run_without_a_timer_stops_the_earlier_one(tree: dict[str, Path], how: str) -> None:
    (tree["content"] / "a.txt").write_text("a")
    thread, said = periodic_reports(tree)
    assert "1 file copied" in next_report(said)
    marker = tree["state"] / "sync" / "periodic.id"
    assert marker.exists()
    every, drive = (0, tree["drive"]) if how == "sync off" else (1, None)
    assert start_periodic(tree["content"], drive, tree["state"], every, said.put) is None
    thread.join(timeout=30)
    assert not thread.is_alive() and not marker.exists()
    if how == "no Drive":
        assert "periodic sync is off: this runtime has no Drive folder" in said.get(timeout=5)


# ------------------------------------------------------------------------------------------- .colabsshignore
def test_colabsshignore_comments_are_comments_for_real_rsync(tree: dict[str, Path]) -> None:
    content = tree["content"]
    (content / ".colabsshignore").write_bytes(
        b"# whole-line comment\r\n"
        b"+ keep.log  # kept: the first rule that matches decides\n"
        b"*.log            # any file ending in .log, at any depth\n"
        b"/scratch/\t# the top folder only\n"
        b"   ; rsync's other comment mark\n"
        b"\n"
        b"  wandb/  \n"
        b"[#]draft*\n")
    files = {"train.log": "l", "sub/keep.log": "k", "sub/eval.log": "l", "scratch/tmp.bin": "t",
             "sub/scratch/kept.txt": "k", "wandb/run-1/files.txt": "w", "#draft.md": "d", "notes #1.md": "n",
             "model.py": "m"}
    for rel, text in files.items():
        (content / rel).parent.mkdir(parents=True, exist_ok=True)
        (content / rel).write_text(text)
    assert ignore_patterns((content / ".colabsshignore").read_text()) == [
        "+ keep.log", "*.log", "/scratch/", "wandb/", "[#]draft*"]
    code, events = run_runner(tree)
    assert code == 0, events[-1]
    expected = {".colabsshignore", "sub/keep.log", "sub/scratch/kept.txt", "notes #1.md", "model.py"}
    assert set(tree_bytes(tree["drive"] / "colabssh" / "content")) == expected
    assert events[-1]["files_total"] == len(expected)
    assert has_file(content, ["sub"], Excluder([*ALWAYS_EXCLUDED] + ignore_patterns(
        (content / ".colabsshignore").read_text())))  # --delete's check reads the patterns as rsync does


def test_a_bang_line_that_would_clear_colabsshs_exclusions_is_refused(tree: dict[str, Path]) -> None:
    (tree["content"] / "drive").mkdir()
    (tree["content"] / ".colabsshignore").write_text("*.log\n!\n")
    code, events = run_runner(tree)
    assert code == EXIT_BAD_INPUT
    assert events[-1]["message"].endswith("line 2: '!' would clear colabssh's own exclusions (drive/, .config/, "
                                          "caches)")
    code, events = run_runner(tree, "--exclude=!")
    assert code == EXIT_BAD_INPUT and "would clear colabssh's own exclusions" in events[-1]["message"]
    assert list(tree["drive"].iterdir()) == []


# ------------------------------------------------------------------------------------------- shipping (18)
def test_the_runner_runs_shipped_alone_then_from_the_cache(tree: dict[str, Path], tmp_path: Path) -> None:
    """Outside any checkout (python -I -S, another folder): from the bundle sent on stdin, then from the cache."""
    (tree["content"] / "x.txt").write_text("x")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["COLABSSH_STATE"] = str(tree["state"])
    argv = [sys.executable, "-I", *boot_argv("start", "--state", str(tree["state"]), "--content",
                                             str(tree["content"]), "--drive", str(tree["drive"]))[1:]]
    done = subprocess.run(argv, input=PAYLOAD, capture_output=True, timeout=60, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout.decode().splitlines()[-1])["new_files"] == 1
    assert (tree["state"] / "code" / BUNDLE.digest).is_file()
    again = subprocess.run([sys.executable, "-I", *boot_argv("attach", "--state", str(tree["state"]))[1:]],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr.decode()
    assert json.loads(again.stdout.decode().splitlines()[-1])["new_files"] == 1
