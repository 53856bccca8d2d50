"""Issue 10 part 4: the runner never blocks on, or reads without limit, a file that is not what it expects.

Every file the runner opens (the user's .colabsshignore, and all of its own state: the lock, the pointer to the
current job, each job's spec, log, result and pid files, the periodic sync's token and log, the temp folder) is
replaced here by a FIFO (opening it would block), a link to /dev/zero (reading it never ends), a folder, or a huge
sparse file; every command must still end at once with a result or one clear refusal, and leave the lock free.
The lock itself says who holds it (pid and process start time): a holder that is gone is taken over with a note,
a live one is named in the refusal. Real rsync, real processes, no SSH (tests/test_sync.py has the laptop side).
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import resource
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from colab_bootstrap.sync import protocol as sync_protocol
from colab_bootstrap.sync.files import write_text
from colab_bootstrap.sync.jobs import Jobs, worker_pid
from colab_bootstrap.sync.periodic import start_periodic
from colab_bootstrap.sync.protocol import EXIT_BAD_INPUT, EXIT_LOCKED, EXIT_SIGNAL
from tests.shipped import PAYLOAD, boot_argv, feed

MEMORY_CAP = 1 << 30  # address space of each runner started here: reading /dev/zero whole fails, not the machine
DEADLINE = 20.0  # seconds a runner command may take here (they take well under one)
HUGE = 8 << 30  # a sparse file: no disk used, but far beyond any cap


def capped_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    content, drive, state = tmp_path / "content", tmp_path / "drive", tmp_path / "state"
    for folder in (content, drive, state):
        folder.mkdir()
    (content / "notes.txt").write_text("n")
    return {"content": content, "drive": drive, "state": state}


def runner(tree: dict[str, Path], *args: str) -> tuple[int, list[dict], str]:
    """A runner command as the laptop runs it (BOOT, the bundle on stdin), bounded in time and memory."""
    try:
        done = subprocess.run(boot_argv(*args), input=PAYLOAD, capture_output=True,
                              timeout=DEADLINE, preexec_fn=capped_memory)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"`{args[0]}` did not end within {DEADLINE} s (blocked on a special file?)") from None
    lines = done.stdout.decode(errors="replace").splitlines()
    events = [json.loads(line) for line in lines]  # nothing but JSON lines on stdout
    return done.returncode, events, done.stderr.decode(errors="replace")


def start(tree: dict[str, Path], *extra: str) -> tuple[int, list[dict], str]:
    return runner(tree, "start", "--state", str(tree["state"]), "--content", str(tree["content"]), "--drive",
                  str(tree["drive"]), *extra)


def make_special(path: Path, kind: str) -> None:
    """Replace PATH (whatever it is) by a special file of KIND."""
    if path.is_dir() and not path.is_symlink():
        for child in sorted(path.rglob("*"), reverse=True):
            child.rmdir() if child.is_dir() and not child.is_symlink() else child.unlink()
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.close()
    elif kind == "huge":
        with open(path, "wb") as sparse:
            sparse.truncate(HUGE)
    else:
        raise ValueError(kind)


def release_blocked_readers(path: Path) -> None:
    """Unblock a process stuck opening the FIFO at PATH for reading (so a failing test leaves nothing hung)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    os.close(fd)


def lock_is_free(state: Path) -> bool:
    return not Jobs(state).is_locked()


# ------------------------------------------------------------------------------------------- .colabsshignore
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder", "socket", "huge"])
def test_a_colabsshignore_that_is_not_a_small_regular_file_is_refused_at_once(tree: dict[str, Path],
                                                                             kind: str) -> None:
    ignore = tree["content"] / ".colabsshignore"
    make_special(ignore, kind)
    try:
        code, events, err = start(tree)
    finally:
        release_blocked_readers(ignore)
    assert code == EXIT_BAD_INPUT, (events, err)
    assert err == "" and events[-1]["event"] == "error" and events[-1]["kind"] == "bad_input"
    what = {"fifo": "a FIFO (named pipe), not a regular file", "dev-zero": "a character device, not a regular file",
            "folder": "a folder, not a regular file", "socket": "a socket, not a regular file",
            "huge": "larger than 1.0 MiB (8.0 GiB)"}[kind]
    assert events[-1]["message"] == f"cannot use {ignore}: it is {what}"
    assert "plain text file" in events[-1]["hint"]
    assert lock_is_free(tree["state"])
    assert list(tree["drive"].iterdir()) == []  # refused before a byte moved


def test_a_colabsshignore_may_be_a_link_to_a_small_regular_file(tree: dict[str, Path]) -> None:
    (tree["state"] / "patterns").write_text("*.log\n")
    (tree["content"] / ".colabsshignore").symlink_to(tree["state"] / "patterns")
    (tree["content"] / "run.log").write_text("l")
    code, events, err = start(tree)
    assert code == 0, (events, err)
    backup = tree["drive"] / "colabssh" / "content"
    assert sorted(p.name for p in backup.iterdir()) == ["notes.txt"]


# ------------------------------------------------------------------------------------------- the runner's own state
def first_run(tree: dict[str, Path]) -> Path:
    """A finished sync, so every state file exists; returns its job folder."""
    code, events, err = start(tree)
    assert code == 0, (events, err)
    job = tree["state"] / "sync" / "jobs" / events[-1]["job"]
    (job / "rsync.pid").write_text("1\n")  # as a run leaves them (the worker's pid files stay)
    assert {"job.json", "log", "result.json", "worker.pid", "worker.log"} <= {p.name for p in job.iterdir()}
    return job


STATE_FILES = ["lock", "current", "job.json", "log", "result.json", "worker.pid", "rsync.pid", "worker.log"]


def ends_plainly(tree: dict[str, Path], command: list[str]) -> None:
    """COMMAND ends in time with JSON events only: a result, or one clear refusal (path, hint); the lock free."""
    code, events, err = runner(tree, *command)
    assert "Traceback" not in err and err == "", err
    assert events, f"{command[0]} said nothing"
    last = events[-1]
    assert last["event"] in ("result", "error", "cancelled"), last
    if last["event"] == "error":  # one clear line: what is wrong, where, and what to do
        assert str(tree["state"]) in last["message"] and last["hint"], last
        assert "\n" not in last["message"]
    assert lock_is_free(tree["state"])


@pytest.mark.slow  # a runner process per special file
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder", "huge"])
@pytest.mark.parametrize("name", STATE_FILES)
def test_no_runner_command_blocks_on_a_special_state_file(tree: dict[str, Path], name: str, kind: str) -> None:
    job = first_run(tree)
    target = tree["state"] / "sync" / name if name in ("lock", "current") else job / name
    make_special(target, kind)
    if name == "worker.pid":
        (job / "result.json").unlink()  # a run killed before its result: a follower asks whether its worker lives
    try:
        for command in (["attach", "--state", str(tree["state"])], ["cancel", "--state", str(tree["state"])],
                        ["start", "--state", str(tree["state"]), "--content", str(tree["content"]), "--drive",
                         str(tree["drive"])]):
            ends_plainly(tree, command)
    finally:
        release_blocked_readers(target)
    code, events, _ = start(tree)
    if name == "lock" and kind != "huge":
        assert code != 0 and events[-1]["message"].startswith(f"the sync lock {target} is ")
        assert f"rm -r -- {target}" in events[-1]["hint"]
    elif name == "current" and kind == "folder":
        assert code != 0 and f"{target}" in events[-1]["message"]
    else:
        assert code == 0, events[-1]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge"])
@pytest.mark.parametrize("name", ["lock", "current", "job.json", "result.json", "worker.pid"])
def test_the_laptops_stop_never_blocks_on_a_special_state_file(tree: dict[str, Path], name: str, kind: str) -> None:
    """`cancel --token` (Ctrl-C on the laptop) reads the lock's record and the jobs' files to find its run."""
    job = first_run(tree)
    target = tree["state"] / "sync" / name if name in ("lock", "current") else job / name
    make_special(target, kind)
    try:
        ends_plainly(tree, ["cancel", "--state", str(tree["state"]), "--token", "0123456789abcdef", "--wait", "0.2"])
    finally:
        release_blocked_readers(target)


def test_the_job_named_by_current_must_be_one_of_its_jobs(tree: dict[str, Path], tmp_path: Path) -> None:
    first_run(tree)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "job.json").write_text(json.dumps({"mode": "backup", "origin": "laptop"}))
    (elsewhere / "log").write_text("secret\n")
    (elsewhere / "result.json").write_text('{"exit": 0, "ended": 0}')
    for name in (str(elsewhere), "../../../elsewhere", "."):
        (tree["state"] / "sync" / "current").write_text(name + "\n")
        code, events, err = runner(tree, "attach", "--state", str(tree["state"]))
        assert code == EXIT_BAD_INPUT and events[-1]["kind"] == "no_job", (events, err)
        assert "secret" not in json.dumps(events)


def test_state_writes_never_block_on_a_fifo_left_at_their_temp_name(tree: dict[str, Path]) -> None:
    target = tree["state"] / "current"
    temp = tree["state"] / f".current.{os.getpid()}.tmp"  # the name write_text gives its temp file
    os.mkfifo(temp)
    writer = threading.Thread(target=write_text, args=(target, "x\n"), daemon=True)
    writer.start()
    writer.join(timeout=10)
    blocked = writer.is_alive()
    release_blocked_readers(temp)
    if blocked:  # unblock it for good: a reader lets the blocked open for writing go on
        fd = os.open(temp, os.O_RDONLY | os.O_NONBLOCK)
        writer.join(timeout=10)
        os.close(fd)
    assert not blocked, "write_text blocked on a FIFO at its temp name"
    assert target.read_text() == "x\n" and stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.parametrize("where", ["backup", "restore"])
def test_a_temp_folder_that_is_a_link_is_refused_and_nothing_it_points_to_is_removed(tree: dict[str, Path],
                                                                                    tmp_path: Path,
                                                                                    where: str) -> None:
    """rsync's temp folder is emptied before each run: a link there must not empty the folder it points to."""
    victim = tmp_path / "precious"
    victim.mkdir()
    (victim / "thesis.tex").write_text("years of work")
    backup = tree["drive"] / "colabssh" / "content"
    if where == "backup":
        backup.mkdir(parents=True)
        link = backup / ".colabssh-tmp"
        args: tuple[str, ...] = ()
    else:
        code, events, _ = start(tree)  # a backup to restore from
        assert code == 0, events[-1]
        link = tree["content"] / ".colabssh-tmp"
        args = ("--mode", "restore")
    link.symlink_to(victim)
    code, events, err = start(tree, *args)
    assert (victim / "thesis.tex").read_text() == "years of work"
    assert code == EXIT_BAD_INPUT, (events, err)
    assert events[-1]["message"] == f"{link} is a symbolic link, not a folder: colabssh keeps rsync's temp files " \
                                    "there and empties it before each run"
    assert lock_is_free(tree["state"])


def test_an_endless_line_in_a_log_is_cut_not_kept_whole() -> None:
    seen: list[dict] = []
    parser = sync_protocol.LogParser(seen.append)
    for _ in range(64):  # 64 MB without a line break, as a log replaced by something odd would give
        parser.feed(b"\0" * (1 << 20))
    parser.feed(b"\nsent 1 bytes\n")
    parser.close()
    assert [len(e["text"]) for e in seen if e["event"] == "message"] == [sync_protocol.LINE_MAX]


# ------------------------------------------------------------------------------------------- the periodic sync
def periodic(tree: dict[str, Path]) -> tuple[threading.Thread, queue.Queue[str]]:
    said: queue.Queue[str] = queue.Queue()
    thread = start_periodic(tree["content"], tree["drive"], tree["state"], 1, said.put)
    assert thread is not None
    return thread, said


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "a condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def stop_periodic(tree: dict[str, Path]) -> Iterator[list[Path]]:
    """Stops the timer and unblocks any FIFO listed, whatever the test's end."""
    fifos: list[Path] = []
    yield fifos
    for fifo in fifos:
        release_blocked_readers(fifo)
    start_periodic(tree["content"], tree["drive"], tree["state"], 0, lambda text: None)


@pytest.mark.slow  # waits for a periodic run
def test_a_special_periodic_log_does_not_stop_the_periodic_sync(tree: dict[str, Path],
                                                                stop_periodic: list[Path]) -> None:
    log = tree["state"] / "sync" / "periodic.log"
    thread, said = periodic(tree)
    assert "1 file copied" in said.get(timeout=30) + said.get(timeout=30)
    wait_until(log.exists, what="the periodic log")
    log.unlink()
    os.mkfifo(log)
    stop_periodic.append(log)
    (tree["content"] / "later.txt").write_text("l")
    wait_until(lambda: (tree["drive"] / "colabssh" / "content" / "later.txt").exists(), timeout=15,
               what="the next periodic run")
    (tree["content"] / "later2.txt").write_text("l")  # and the one after: the FIFO blocked no write
    wait_until(lambda: (tree["drive"] / "colabssh" / "content" / "later2.txt").exists(), timeout=15,
               what="the run after it")
    assert stat.S_ISFIFO(log.lstat().st_mode) and thread.is_alive()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_special_periodic_token_ends_the_timer_instead_of_blocking_it(tree: dict[str, Path], kind: str,
                                                                       stop_periodic: list[Path]) -> None:
    marker = tree["state"] / "sync" / "periodic.id"
    thread, said = periodic(tree)
    said.get(timeout=30)
    make_special(marker, kind)
    stop_periodic.append(marker)
    thread.join(timeout=15)
    assert not thread.is_alive(), "the periodic thread is stuck reading its token"


# ------------------------------------------------------------------------------------------- the lock and its holder
def process_start(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


@pytest.fixture
def holder(tree: dict[str, Path]) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A process holding the runtime's sync lock (as a sync's rsync inherits it), and our descriptor of it."""
    jobs = Jobs(tree["state"])
    fd = jobs.try_lock()
    assert fd is not None
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                               pass_fds=(fd,))
    yield process, fd
    process.kill()
    process.wait()
    os.close(fd)


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def write_record(fd: int, **record: object) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)


def test_a_live_holder_is_named_with_its_pid_and_since_when(tree: dict[str, Path], holder) -> None:  # noqa: ANN001
    process, fd = holder
    since = time.time() - 125
    write_record(fd, pid=process.pid, start=process_start(process.pid), boot=boot_id(), since=since,
                 role="worker", origin="laptop", mode="backup", token="t")
    code, events, err = start(tree)
    assert code == EXIT_LOCKED, (events, err)
    clock = time.strftime("%H:%M:%S UTC", time.gmtime(since))
    assert events[-1]["message"] == (f"a sync is already running on this runtime: a backup started {clock} "
                                     f"(2 min ago) by the laptop, pid {process.pid}")
    assert "--attach" in events[-1]["hint"]
    assert process.poll() is None  # a live holder is never touched


@pytest.mark.parametrize("gone", ["dead", "pid reused"])
def test_a_lock_whose_holder_is_gone_is_taken_over_with_a_note(tree: dict[str, Path], gone: str) -> None:
    """The recorded holder is dead (or its pid now names another process: a different start time); what it left
    holding the lock (here an rsync-like leftover) is stopped, and the run goes on."""
    jobs = Jobs(tree["state"])
    fd = jobs.try_lock()
    assert fd is not None
    leftover = subprocess.Popen(["/bin/bash", "-c", "exec -a rsync sleep 600"], pass_fds=(fd,),
                                start_new_session=True)
    if gone == "dead":
        dead = subprocess.Popen(["true"])
        dead.wait()
        pid, start_ticks = dead.pid, 1
    else:
        pid, start_ticks = os.getpid(), process_start(os.getpid()) + 1  # alive, but not the process that locked
    write_record(fd, pid=pid, start=start_ticks, boot=boot_id(), since=time.time() - 60,
                 role="worker", origin="laptop", mode="backup", token="old")
    os.close(fd)
    try:
        code, events, err = start(tree)
        assert code == 0, (events, err)
        leftover.wait(timeout=10)
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()
    notes = [e["message"] for e in events if e["event"] == "warning"]
    assert len(notes) == 1 and notes[0].startswith("took over the sync lock: ")
    assert f"pid {pid}" in notes[0] and f"stopped what it left holding the lock: pid {leftover.pid} (rsync)" in notes[0]
    assert lock_is_free(tree["state"])


def test_a_free_lock_left_by_a_killed_holder_is_taken_with_a_note(tree: dict[str, Path]) -> None:
    jobs = Jobs(tree["state"])
    fd = jobs.try_lock()
    assert fd is not None
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_record(fd, pid=dead.pid, start=1, boot=boot_id(), since=time.time() - 30, role="worker",
                 origin="laptop", mode="backup", token="old")
    os.close(fd)  # released, as by the kernel when a killed worker's last descriptor closes
    code, events, err = start(tree)
    assert code == 0, (events, err)
    notes = [e["message"] for e in events if e["event"] == "warning"]
    assert len(notes) == 1 and "did not finish" in notes[0] and f"pid {dead.pid}" in notes[0]
    code, events, err = start(tree)  # a clean run clears its record: no note the next time
    assert code == 0 and not [e for e in events if e["event"] == "warning"], events


def test_a_killed_worker_leaves_rsync_holding_the_lock_and_the_next_run_takes_it_over(tree: dict[str, Path]) -> None:
    """kill -9 of the worker: rsync runs on with the lock (no second sync may write beside it); the next sync sees
    the recorded holder gone, stops that rsync, notes it, and runs."""
    (tree["content"] / "big.bin").write_bytes(os.urandom(5_000_000))
    argv = boot_argv("start", "--state", str(tree["state"]), "--content",
            str(tree["content"]), "--drive", str(tree["drive"]), "--bwlimit", "300")
    follower = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert follower.stdin is not None and follower.stdout is not None
    feed(follower)
    started = next(event for event in map(json.loads, follower.stdout) if event["event"] == "start")
    job = tree["state"] / "sync" / "jobs" / started["job"]
    wait_until(lambda: worker_pid(job) and (job / "rsync.pid").exists(), what="the worker")
    rsync = int((job / "rsync.pid").read_text())
    os.kill(worker_pid(job) or 0, signal.SIGKILL)
    try:
        code, events, err = start(tree)
    finally:
        try:
            os.killpg(rsync, signal.SIGKILL)
        except ProcessLookupError:
            pass
        follower.communicate(timeout=30)
    assert code == 0, (events, err)
    notes = [e["message"] for e in events if e["event"] == "warning"]
    assert len(notes) == 1 and "stopped what it left holding the lock: " in notes[0]
    assert f"pid {rsync} (rsync)" in notes[0]
    assert (tree["drive"] / "colabssh" / "content" / "big.bin").stat().st_size == 5_000_000


def test_the_lock_records_its_holder_and_a_clean_end_clears_it(tree: dict[str, Path]) -> None:
    jobs = Jobs(tree["state"])
    fd = jobs.acquire({"role": "runner", "origin": "laptop", "mode": "backup", "token": "t"}, lambda note: None)
    record = json.loads(jobs.lock.read_text())
    assert record["pid"] == os.getpid() and record["start"] == process_start(os.getpid())
    assert record["boot"] == boot_id() and abs(record["since"] - time.time()) < 60
    assert fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB) is None  # ours
    jobs.release(fd)
    assert jobs.lock.read_text() == "" and lock_is_free(tree["state"])


# ------------------------------------------------------------------------------------------- stopping before the copy
def frozen_while_preparing(tree: dict[str, Path], token: str) -> subprocess.Popen[bytes]:
    """A runner (as the laptop starts it, with TOKEN) caught and stopped (SIGSTOP) while it holds the lock and is
    still checking, before any worker exists: with --delete it looks for a file to copy, and here the only one
    comes after 10,000 links (a folder's entries are all looked at before its sub-folders), each tested against
    the 200 patterns of a .colabsshignore: about half a second in that walk."""
    many = tree["content"] / "many"
    (many / "deeper").mkdir(parents=True)
    for name in range(10_000):
        (many / f"l{name}").symlink_to("nowhere")
    (tree["content"] / ".colabsshignore").write_text("".join(f"*.never{i}\n" for i in range(200)))
    (many / "deeper" / "real.txt").write_bytes(b"x")
    argv = boot_argv("start", "--state", str(tree["state"]), "--content",
            str(tree["content"]), "--drive", str(tree["drive"]), "--token", token, "--delete")
    runner_process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert runner_process.stdin is not None
    feed(runner_process)
    jobs = Jobs(tree["state"])
    deadline = time.monotonic() + 30
    while True:
        record = jobs.holder() if jobs.lock.exists() else None
        if record is not None and record.get("token") == token:
            os.kill(runner_process.pid, signal.SIGSTOP)
            break
        assert runner_process.poll() is None and time.monotonic() < deadline, "the runner never took the lock"
        time.sleep(0.005)
    assert jobs.holder() == {**record}, "it moved on before it was stopped"
    assert record["role"] == "runner" and record["pid"] == runner_process.pid
    return runner_process


def signal_pending(pid: int, sig: int) -> bool:
    """SIG waits for the (stopped) process PID: /proc/PID/status lists pending signals as bit masks."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    masks = [int(line.split()[1], 16) for line in lines if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(mask & (1 << (sig - 1)) for mask in masks)


def test_ctrl_c_while_the_runtime_is_still_checking_stops_the_run_and_frees_the_lock(tree: dict[str, Path]) -> None:
    token = "feedfacecafebeef"
    frozen = frozen_while_preparing(tree, token)
    stop = subprocess.Popen(boot_argv("cancel", "--state", str(tree["state"]),
                             "--token", token, "--wait", "5"), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert stop.stdin is not None
    feed(stop)
    wait_until(lambda: signal_pending(frozen.pid, signal.SIGTERM), what="the stop to reach the runner")
    os.kill(frozen.pid, signal.SIGCONT)
    out, _ = stop.communicate(timeout=30)
    answer = json.loads(out.decode().splitlines()[-1])
    frozen.communicate(timeout=30)
    assert frozen.returncode == EXIT_SIGNAL
    assert answer["event"] == "cancelled" and answer["state"] == "stopped" and answer["running"] is True
    assert lock_is_free(tree["state"]) and Jobs(tree["state"]).lock.read_text() == ""
    assert not (tree["drive"] / "colabssh").exists()  # nothing was copied, no worker was started
    assert not list((tree["state"] / "sync" / "jobs").glob("*/worker.pid"))


def test_a_laptop_gone_while_the_runtime_is_still_checking_stops_the_run(tree: dict[str, Path]) -> None:
    frozen = frozen_while_preparing(tree, "0ddba11deadbeef0")
    assert frozen.stdout is not None
    frozen.stdout.close()  # the laptop's end of the link: gone
    frozen.stdout = None
    os.kill(frozen.pid, signal.SIGCONT)
    frozen.communicate(timeout=30)
    assert frozen.returncode == EXIT_SIGNAL
    assert lock_is_free(tree["state"])
    assert not (tree["drive"] / "colabssh").exists()
    for job in (tree["state"] / "sync" / "jobs").iterdir():  # a job made before it noticed says so
        assert json.loads((job / "result.json").read_text())["cancelled"] is True


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder", "huge"])
def test_attach_names_a_job_spec_it_cannot_read_instead_of_reporting_a_sync_of_nothing(tree: dict[str, Path],
                                                                                      kind: str) -> None:
    """Found from outside: `sync --attach` said `synced None -> None` and exit 0 with job.json a FIFO."""
    job = first_run(tree)
    make_special(job / "job.json", kind)
    try:
        code, events, _ = runner(tree, "attach", "--state", str(tree["state"]))
    finally:
        release_blocked_readers(job / "job.json")
    last = events[-1]
    assert code != 0 and last["event"] == "error", last
    assert last["message"].startswith(f"cannot follow the sync: {job / 'job.json'}") and "rm -r --" in last["hint"]
    assert not any(event.get("source") is None and event["event"] == "result" for event in events)


def test_a_pointer_that_is_a_folder_is_named_before_a_job_is_made(tree: dict[str, Path]) -> None:
    """Found from outside: `the sync could not start: Is a directory: .../.current.PID.tmp -> .../current`, and
    a job folder left behind at each try."""
    first_run(tree)
    current = tree["state"] / "sync" / "current"
    current.unlink()
    current.mkdir()
    jobs = sorted(p.name for p in (tree["state"] / "sync" / "jobs").iterdir())
    code, events, _ = start(tree)
    assert code != 0 and events[-1]["message"] == f"cannot tell which sync ran last: {current} is a folder, not a " \
        "regular file", events[-1]
    assert f"rm -r -- {current}" in events[-1]["hint"] and ".tmp" not in events[-1]["message"]
    assert sorted(p.name for p in (tree["state"] / "sync" / "jobs").iterdir()) == jobs
    assert lock_is_free(tree["state"])
