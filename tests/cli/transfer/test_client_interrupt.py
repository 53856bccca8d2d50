"""Issue 10 part 4, the laptop side: Ctrl-C, a laptop that goes away, special files and text from the runtime.

End to end through the real sshd the printed cell started, with real rsync on both sides: Ctrl-C during `sync`
ends the command within two seconds (exit 130) with one line on the state of the backup and what to run, and leaves
nothing of colabssh's running on the runtime; a laptop killed mid-sync leaves a run that finishes and releases the
lock; a .colabsshignore that is a FIFO is refused at once; names from the runtime print as plain text.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.transfer.test_client import BIG, backup_of, cli, cli_process, temp_file_growing, wait_until

CTRL_C_SECONDS = 2.0


def leftovers(connected) -> list[str]:  # noqa: ANN001
    """What of colabssh still runs on the runtime: processes started in its SSH sessions (their environment names
    this runtime's state folder), other than sshd itself and the cell."""
    marker = f"COLABSSH_STATE={connected.runtime.state}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), connected.runtime.process.pid):
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            comm = (entry / "comm").read_text().strip()
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in environ and comm != "sshd" and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            found.append(f"{entry.name} {comm}: {argv}")
    return found


def nothing_left(connected) -> None:  # noqa: ANN001
    wait_until(lambda: not leftovers(connected), timeout=10, what="colabssh's processes on the runtime to end")


def interrupt(process: subprocess.Popen[str]) -> tuple[float, str, str]:
    """SIGINT (what Ctrl-C sends) to the CLI; seconds until it ended, its stdout and stderr."""
    begun = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    return time.monotonic() - begun, out, err


def test_ctrl_c_stops_the_sync_on_the_runtime_within_two_seconds_and_says_the_backup_is_partial(
        connected, capsys) -> None:  # noqa: ANN001
    content = connected.runtime.content
    (content / "big.bin").write_bytes(os.urandom(BIG))
    (content / "small.txt").write_text("s")
    running = cli_process("sync", "--bwlimit", "2000")
    wait_until(lambda: temp_file_growing(backup_of(connected) / ".colabssh-tmp"), what="rsync's temp file")
    seconds, out, err = interrupt(running)
    assert running.returncode == 130, err
    assert seconds <= CTRL_C_SECONDS, f"Ctrl-C took {seconds:.2f} s"
    assert out == "" and "Traceback" not in err
    assert err.splitlines()[-2:] == [
        "colabssh: error: sync interrupted, and stopped on the runtime too (nothing of it is left running there): "
        "the backup on Drive is partial (what was copied is kept, every file whole: its old version or its new one)",
        "  hint: run `colabssh sync` again to finish it (it copies only what is missing)"]
    nothing_left(connected)
    assert not (backup_of(connected) / "big.bin").exists()  # never a partial file under its name
    code, out, err = cli(capsys, "sync")  # the lock was released
    assert code == 0, err
    assert (backup_of(connected) / "big.bin").stat().st_size == BIG


def runtime_sshd(connected) -> list[int]:  # noqa: ANN001
    """This runtime's sshd processes: its listener (whose command line names the runtime's state folder) and the
    one per connection below it."""
    parents: dict[int, int] = {}
    sshd: list[int] = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "sshd":
                pid = int(entry.name)
                parents[pid] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if str(connected.runtime.state) in (entry / "cmdline").read_text():
                    sshd.append(pid)
        except OSError:
            continue
    for _ in range(3):  # listener -> connection -> its privilege-separated child
        sshd += [pid for pid, parent in parents.items() if parent in sshd and pid not in sshd]
    return sshd


def test_ctrl_c_ends_within_two_seconds_even_when_the_runtime_does_not_answer(connected, capsys) -> None:  # noqa: ANN001
    content = connected.runtime.content
    (content / "big.bin").write_bytes(os.urandom(BIG))
    running = cli_process("sync", "--bwlimit", "2000")
    wait_until(lambda: temp_file_growing(backup_of(connected) / ".colabssh-tmp"), what="rsync's temp file")
    frozen = runtime_sshd(connected)
    assert frozen
    for pid in frozen:  # the link goes silent: nothing the laptop sends is answered
        os.kill(pid, signal.SIGSTOP)
    try:
        seconds, out, err = interrupt(running)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    assert running.returncode == 130 and seconds <= CTRL_C_SECONDS, (seconds, err)
    assert err.splitlines()[-2:] == [
        "colabssh: error: sync interrupted: could not confirm within 2 s that it stopped on the runtime; it may "
        "still be running there, and the backup on Drive may be partial",
        "  hint: see it with `colabssh sync --attach` (Ctrl-C there only stops following), then run `colabssh sync` "
        "again"]
    code, out, err = cli(capsys, "sync", "--attach")  # what the hint says: the run's end, whatever it was
    assert code in (0, 20), err
    nothing_left(connected)


def test_ctrl_c_while_following_only_stops_following(connected, capsys) -> None:  # noqa: ANN001
    content = connected.runtime.content
    data = os.urandom(3 * 1000 * 1000)
    (content / "run.bin").write_bytes(data)
    syncing = cli_process("sync", "--bwlimit", "2000")
    wait_until(lambda: temp_file_growing(backup_of(connected) / ".colabssh-tmp"), what="the sync")
    following = cli_process("sync", "--attach")
    wait_until(lambda: any(line.endswith(" attach ") for line in leftovers(connected)),
               what="the follower on the runtime")
    seconds, _, err = interrupt(following)
    assert following.returncode == 130 and seconds <= CTRL_C_SECONDS, (seconds, err)
    assert "colabssh: error: interrupted: stopped following; the sync goes on on the runtime" in err
    out, err = syncing.communicate(timeout=60)
    assert syncing.returncode == 0, err  # the sync itself went on to its end
    assert (backup_of(connected) / "run.bin").read_bytes() == data
    nothing_left(connected)


def test_a_laptop_killed_mid_sync_leaves_a_run_that_finishes_and_releases_the_lock(
        connected, capsys) -> None:  # noqa: ANN001
    content = connected.runtime.content
    data = os.urandom(3 * 1000 * 1000)
    (content / "run.bin").write_bytes(data)
    slow = cli_process("sync", "--bwlimit", "3000")
    wait_until(lambda: temp_file_growing(backup_of(connected) / ".colabssh-tmp"), what="the sync")
    os.killpg(slow.pid, signal.SIGKILL)  # the laptop side and its ssh vanish at once
    slow.wait()
    code, out, err = cli(capsys, "sync")  # the detached run holds the lock, and says who it is
    assert code == 1 and out == ""
    assert "colabssh: error: a sync is already running on this runtime: a backup started " in err
    assert " by the laptop, pid " in err and "--attach" in err
    code, out, err = cli(capsys, "sync", "--attach")
    assert code == 0, err
    nothing_left(connected)
    code, out, err = cli(capsys, "sync")
    assert code == 0 and "nothing to copy, " in out and "copied into" not in out, err
    assert (backup_of(connected) / "run.bin").read_bytes() == data


def test_a_dropped_connection_mid_sync_says_the_sync_goes_on(connected, capsys) -> None:  # noqa: ANN001
    content = connected.runtime.content
    data = os.urandom(3 * 1000 * 1000)
    (content / "run.bin").write_bytes(data)
    slow = cli_process("sync", "--bwlimit", "3000")
    wait_until(lambda: temp_file_growing(backup_of(connected) / ".colabssh-tmp"), what="the sync")
    ssh = [pid for pid in map(int, Path(f"/proc/{slow.pid}/task/{slow.pid}/children").read_text().split())
           if Path(f"/proc/{pid}/comm").read_text().strip() == "ssh"]
    assert len(ssh) == 1
    os.kill(ssh[0], signal.SIGKILL)  # the connection drops; the laptop side lives on
    _, err = slow.communicate(timeout=30)
    assert slow.returncode == 3 and "Traceback" not in err, err
    assert "colabssh: error: colab: the connection to the runtime dropped during the sync; it goes on there" in err
    assert "hint: follow it with `colabssh sync --attach`" in err
    code, out, err = cli(capsys, "sync", "--attach")
    assert code == 0 and (backup_of(connected) / "run.bin").read_bytes() == data, err
    nothing_left(connected)
    assert cli(capsys, "sync")[0] == 0  # and the lock was released


def test_a_fifo_colabsshignore_is_refused_at_once_and_never_holds_the_lock(connected, capsys) -> None:  # noqa: ANN001
    """The issue's case: a FIFO there made `colabssh sync` hang with the runtime's lock held, for good."""
    content = connected.runtime.content
    ignore = content / ".colabsshignore"
    os.mkfifo(ignore)
    (content / "keep.txt").write_text("k")
    first = cli_process("sync")
    try:
        _, err = first.communicate(timeout=20)
    except subprocess.TimeoutExpired:  # the bug: kill the laptop as a user would, and see whether the lock is free
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        err = "(hung)"
    finally:
        try:  # unblock a runner stuck opening the FIFO, so a failing run leaves nothing behind
            os.close(os.open(ignore, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    assert first.returncode == 2, err
    assert err.splitlines() == [
        f"colabssh: error: cannot use {ignore}: it is a FIFO (named pipe), not a regular file",
        "  hint: make it a plain text file of at most 1.0 MiB, or remove it (it lists what the backup leaves out)"]
    ignore.unlink()
    ignore.write_text("*.log\n")
    code, out, err = cli(capsys, "sync")
    assert code == 0, err
    nothing_left(connected)


RSYNC_SHIM = '#!/bin/sh\nexec {rsync} --bwlimit=1500 "$@"\n'  # the real rsync, slowed down so Ctrl-C lands mid-copy


@pytest.mark.parametrize("direction", ["push", "pull"])
def test_ctrl_c_during_pull_and_push_ends_within_two_seconds_and_leaves_no_partial_file(
        connected, tmp_path: Path, direction: str) -> None:  # noqa: ANN001
    content = connected.runtime.content
    shim = tmp_path / "bin"
    shim.mkdir()
    real = subprocess.run(["which", "rsync"], capture_output=True, text=True, check=True).stdout.strip()
    (shim / "rsync").write_text(RSYNC_SHIM.format(rsync=real))
    (shim / "rsync").chmod(0o755)
    local = tmp_path / "laptop"
    local.mkdir()
    if direction == "push":
        (local / "big.bin").write_bytes(os.urandom(BIG))
        argv = ["push", str(local / "big.bin"), "inbox"]
        landing = content / "inbox"
    else:
        (content / "big.bin").write_bytes(os.urandom(BIG))
        argv = ["pull", "big.bin", str(local / "here")]
        landing = local / "here"
    running = subprocess.Popen([sys.executable, "-m", "colabssh_cli", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env={**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"})

    def temp_file() -> bool:  # rsync's temp file, beside the file's final name: .big.bin.XXXXXX
        return landing.is_dir() and any(p.name.startswith(".big.bin.") and p.stat().st_size > 0
                                        for p in landing.iterdir())

    wait_until(temp_file, what="the copy to begin")
    seconds, out, err = interrupt(running)
    assert running.returncode == 130 and seconds <= CTRL_C_SECONDS, (seconds, err)
    where = "on the runtime" if direction == "push" else "here"
    assert err.splitlines()[-2:] == [
        f"colabssh: error: interrupted: the {direction} stopped part-way; the files already copied are complete "
        f"{where}, and the one being copied was not kept",
        f"  hint: run the same `colabssh {direction}` again to finish (it skips what is already there)"]
    wait_until(lambda: not any(p.name.startswith(".big.bin.") for p in landing.iterdir()),
               what="the temp file to go")
    assert not (landing / "big.bin").exists()
    nothing_left(connected)


@pytest.mark.parametrize("road", ["rsync", "scp"])
def test_push_refuses_a_special_file_instead_of_reading_it(connected, tmp_path: Path, road: str) -> None:  # noqa: ANN001
    """rsync would skip it (exit 0, nothing copied, no word why); scp, the road without rsync, would open the FIFO
    and wait for good, or read /dev/zero without end."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    zero = tmp_path / "zero"
    zero.symlink_to("/dev/zero")
    env = dict(os.environ)
    if road == "scp":
        tools = tmp_path / "bin"
        tools.mkdir()
        for tool in ("ssh", "scp"):
            (tools / tool).symlink_to(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip())
        env["PATH"] = str(tools)
    for path, kind in ((fifo, "a FIFO (named pipe)"), (zero, "a character device")):
        pushing = subprocess.Popen([sys.executable, "-m", "colabssh_cli", "push", str(path)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
        try:
            out, err = pushing.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(pushing.pid, signal.SIGKILL)
            out, err = pushing.communicate()
        assert pushing.returncode == 2 and out == "", err
        assert err.splitlines()[0] == f"colabssh: error: {path} is {kind}, not a file or folder"


MARKUP = "[link=http://x]y[/link]"  # as the progress bar may show a path
MARKUP_NAME = "[link=https:x]y [bold]z"  # a name cannot hold '/' (no closing tag), but rich reads these as markup
ESCAPE = "evil\x1b[2Jname"


def test_names_from_the_runtime_print_as_plain_text(connected, capsys) -> None:  # noqa: ANN001
    content = connected.runtime.content
    (content / MARKUP_NAME).write_text("m")
    (content / ESCAPE).write_text("e")
    code, out, err = cli(capsys, "sync", "--dry-run")
    assert code == 0, err
    assert f"would copy (new): {MARKUP_NAME}" in out
    assert "\x1b" not in out + err
    assert cli(capsys, "sync")[0] == 0
    os.utime(content / ESCAPE, (2_000_000_000, 2_000_000_000))  # newer on the runtime: restore keeps it, by name
    code, out, err = cli(capsys, "restore")
    assert code == 0, err
    assert "kept 1 file that is newer on the runtime (--force overwrites them): evil\\#033[2Jname" in out
    assert "\x1b" not in out + err


def test_the_progress_bar_shows_names_as_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from colabssh_cli import console as consoles
    from colabssh_cli.commands.transfer_view import ProgressView

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=200, color_system=None)
    monkeypatch.setattr(consoles, "err_console", lambda: terminal)  # the bar draws on a terminal: this one
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with ProgressView("colab: sync") as view:
        for name in (MARKUP, "[/oops]", ESCAPE):
            view({"event": "progress", "current": name, "bytes": 10, "percent": 5, "rate": "1.00MB/s", "files": 1,
                  "to_check": 0, "total": 2})
            assert view.progress is not None
            view.progress.refresh()
        view({"event": "message", "text": f"rsync: {ESCAPE} [bold]x[/bold]"})
    shown = screen.getvalue()
    assert MARKUP in shown and "[/oops]" in shown and "evil\\#033[2Jname" in shown
    assert "rsync: evil\\#033[2Jname [bold]x[/bold]" in shown
    assert "\x1b[2J" not in shown


def test_the_interrupted_lines_say_the_state_and_what_to_run() -> None:
    """Each answer the runtime can give to a Ctrl-C's stop, as the one line the user reads (sync and restore)."""
    from colabssh_cli.transfer.client import SyncOptions, interrupted

    backup, restore = SyncOptions("backup"), SyncOptions("restore")
    stopped = {"exit": 20, "cancelled": True, "new_files": 1, "changed_files": 0, "new_folders": 0, "deleted": 0}
    untouched = {**stopped, "new_files": 0}
    done = {"exit": 0, "cancelled": False, "ended": 1_700_000_000.0}
    cases = [
        (backup, {"state": "stopped", "report": stopped}, "sync interrupted, and stopped on the runtime too (nothing "
         "of it is left running there): the backup on Drive is partial (what was copied is kept",
         "run `colabssh sync` again to finish it"),
        (restore, {"state": "stopped", "report": stopped}, "restore interrupted, and stopped on the runtime too "
         "(nothing of it is left running there): the content root is partial",
         "run `colabssh restore` again"),
        (backup, {"state": "stopped", "report": untouched}, "before anything was copied, and stopped on the runtime "
         "too (nothing of it is left running there): the backup on Drive is unchanged",
         "run `colabssh sync` to start it again"),
        (backup, {"state": "stopped", "report": None}, "the backup on Drive is unchanged", "colabssh sync"),
        (backup, {"state": "not_found", "report": None}, "the backup on Drive is unchanged", "colabssh sync"),
        (backup, {"state": "finished", "report": done},
         "had already finished: the backup on Drive is complete as of ", ""),
        (backup, {"state": "running", "report": None}, "could not confirm within 2 s", "colabssh sync --attach"),
        (backup, None, "could not confirm within 2 s", "colabssh sync --attach"),
        (backup, {"state": "lost", "report": None}, "ended on the runtime without recording a result",
         "colabssh sync"),
        (SyncOptions("backup", dry_run=True), {"state": "stopped", "report": stopped},
         "sync interrupted: the dry run was stopped; nothing was changed", ""),
    ]
    for options, answer, said, hint in cases:
        error = interrupted(options, answer)
        assert error.exit_code == 130 and said in error.message and hint in error.hint, (answer, error.message)
        assert "interrupted" in error.message.split(":")[0] and "\n" not in error.message


def test_push_of_a_folder_with_a_fifo_in_it_skips_the_fifo(connected, capsys, tmp_path: Path) -> None:  # noqa: ANN001
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "main.py").write_text("x")
    os.mkfifo(folder / "pipe")
    code, out, err = cli(capsys, "push", str(folder), "code")
    assert code == 0, err
    landed = connected.runtime.content / "code" / "src"
    assert (landed / "main.py").read_text() == "x" and not (landed / "pipe").exists()
