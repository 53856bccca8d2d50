"""Issue 14: what `colabssh sync` says after a Ctrl-C at a real terminal, and what `sync --attach` says of a run
that was interrupted; rsync's own lines only with --verbose; no empty temp folder left in the backup.

End to end through the real sshd the printed cell started, with real rsync. The Ctrl-C here comes as a terminal
sends it: the terminal driver's SIGINT to the whole foreground process group, ssh included (the tests in
test_client_interrupt.py signal the CLI alone).
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.transfer.test_client import BIG, backup_of, cli, cli_process, temp_file_growing, wait_until
from tests.cli.transfer.test_client_interrupt import CTRL_C_SECONDS, interrupt, nothing_left

INTERRUPTED_LINES = [
    "colabssh: error: the last sync on the runtime was interrupted: the backup on Drive is partial (every file in "
    "it is whole: its old version or its new one)",
    "  hint: run `colabssh sync` again to finish it (it copies only what is missing)"]


class Terminal:
    """The CLI on a pseudo-terminal of its own, as in a shell: its own session, the terminal its controlling one,
    so a Ctrl-C typed there (``ctrl_c``) reaches every process of the foreground group."""

    def __init__(self, *args: str) -> None:
        import pty

        self.master, follower = pty.openpty()

        def take_terminal() -> None:
            import fcntl
            import termios

            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen([sys.executable, "-m", "colabssh_cli", *args], stdin=follower,
                                        stdout=follower, stderr=follower, preexec_fn=take_terminal,
                                        env=dict(os.environ))
        os.close(follower)
        self.output = b""

    def read(self, timeout: float) -> bool:
        """What the terminal shows, until TIMEOUT; False once the program has closed it."""
        if not select.select([self.master], [], [], timeout)[0]:
            return True
        try:
            chunk = os.read(self.master, 1 << 16)
        except OSError:  # EIO: every process that had it open has ended
            return False
        self.output += chunk
        return bool(chunk)

    def wait_for(self, text: bytes, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline or not self.read(0.1):
                raise AssertionError(f"timed out waiting for {text!r} on the terminal: {self.output[-2000:]!r}")

    def ctrl_c(self) -> float:
        """Type Ctrl-C; the seconds until the program ended."""
        begun = time.monotonic()
        os.write(self.master, b"\x03")
        self.process.wait(timeout=30)
        ended = time.monotonic() - begun
        while self.read(1.0):
            pass
        os.close(self.master)
        return ended

    def lines(self) -> list[str]:
        """The lines the terminal ends up showing (a line redrawn after a carriage return: its last drawing)."""
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.output.decode(errors="replace"))
        return [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]


def test_ctrl_c_at_a_terminal_says_the_backup_is_partial_and_nothing_runs_on_the_runtime(
        connected, capsys) -> None:  # noqa: ANN001
    content = connected.runtime.content
    (content / "big.bin").write_bytes(os.urandom(BIG))
    terminal = Terminal("sync", "--bwlimit", "2000")
    terminal.wait_for(b"big.bin")  # the progress bar names the file rsync is copying
    seconds = terminal.ctrl_c()
    lines = terminal.lines()
    assert terminal.process.returncode == 130, lines
    assert seconds <= CTRL_C_SECONDS + 0.5, f"Ctrl-C took {seconds:.2f} s"
    assert "Traceback" not in terminal.output.decode(errors="replace")
    assert [line for line in lines if line.strip()][-2:] == [
        "colabssh: error: sync interrupted, and stopped on the runtime too (nothing of it is left running there): "
        "the backup on Drive is partial (what was copied is kept, every file whole: its old version or its new one)",
        "  hint: run `colabssh sync` again to finish it (it copies only what is missing)"]
    nothing_left(connected)  # what the line says: no runner, worker or rsync of it on the runtime
    assert not (backup_of(connected) / "big.bin").exists()
    code, out, err = cli(capsys, "sync")  # the lock is free, and the run finishes the backup
    assert code == 0, err
    assert (backup_of(connected) / "big.bin").stat().st_size == BIG


def interrupted_sync(connected) -> None:  # noqa: ANN001
    """A sync stopped part-way by a Ctrl-C, as the issue's user left it."""
    content = connected.runtime.content
    (content / "big.bin").write_bytes(os.urandom(BIG))
    (content / "small.txt").write_text("s")
    running = cli_process("sync", "--bwlimit", "2000")
    wait_until(lambda: temp_file_growing(backup_of(connected) / ".colabssh-tmp"), what="rsync's temp file")
    _, _, err = interrupt(running)
    assert running.returncode == 130, err
    nothing_left(connected)


def test_attach_to_an_interrupted_sync_says_one_thing_and_shows_no_raw_rsync_lines(connected, capsys) -> None:  # noqa: ANN001
    """The issue's case: `synced ... 1 new ... (0 B)`, then a raw `rsync error: received SIGUSR1 (code 19)`, then an
    error. Now: no summary (its counts were what rsync had begun), no rsync line, one line and its hint."""
    interrupted_sync(connected)
    code, out, err = cli(capsys, "sync", "--attach")
    assert code == 20 and out == "", (out, err)
    assert err.splitlines() == INTERRUPTED_LINES, err
    code, out, err = cli(capsys, "sync", "--attach", "--verbose")  # rsync's own words, for who asks
    assert code == 20 and out == ""
    assert "rsync error: received SIG" in err and err.splitlines()[-2:] == INTERRUPTED_LINES, err
    code, out, err = cli(capsys, "sync", "--attach", "--json")  # a script still gets the whole document
    assert code == 20 and '"cancelled": true' in out and err.splitlines() == INTERRUPTED_LINES, err


def test_a_successful_sync_leaves_no_temp_folder_in_the_backup(connected, capsys) -> None:  # noqa: ANN001
    """The issue's case: an interrupted sync left an empty .colabssh-tmp/, and later successful syncs kept it. Now
    the interrupted run removes it itself (rsync removed its temp file), and one left behind (by an older version,
    or a killed run: test_client.py) goes with the next sync."""
    interrupted_sync(connected)
    tmp = backup_of(connected) / ".colabssh-tmp"
    assert not tmp.exists()
    tmp.mkdir()
    code, out, err = cli(capsys, "sync")
    assert code == 0, err
    assert not tmp.exists() and (backup_of(connected) / "big.bin").stat().st_size == BIG
    assert cli(capsys, "sync")[0] == 0 and not tmp.exists()  # nor does a sync with nothing to copy make one


def test_a_temp_folder_that_holds_something_is_kept(tmp_path: Path) -> None:
    """Another runtime's sync into the same Drive folder may be writing there: only an empty folder goes."""
    from colab_bootstrap.sync.worker import remove_if_empty

    busy, empty = tmp_path / "busy", tmp_path / "empty"
    busy.mkdir()
    empty.mkdir()
    (busy / ".big.bin.x1y2z3").write_bytes(b"in transit")
    remove_if_empty(busy)
    remove_if_empty(empty)
    remove_if_empty(tmp_path / "missing")
    assert (busy / ".big.bin.x1y2z3").read_bytes() == b"in transit" and not empty.exists()


def test_ctrl_c_in_attach_leaves_the_sync_running(connected, capsys) -> None:  # noqa: ANN001
    """--attach is for a sync that goes on on the runtime: Ctrl-C there stops only the following (unchanged)."""
    content = connected.runtime.content
    data = os.urandom(BIG)
    (content / "run.bin").write_bytes(data)
    syncing = cli_process("sync", "--bwlimit", "5000")
    wait_until(lambda: temp_file_growing(backup_of(connected) / ".colabssh-tmp"), what="the sync")
    following = Terminal("sync", "--attach")
    following.wait_for(b"run.bin")
    following.ctrl_c()
    lines = following.lines()
    assert following.process.returncode == 130, lines
    assert "colabssh: error: interrupted: stopped following; the sync goes on on the runtime" in lines, lines
    assert syncing.wait(timeout=60) == 0  # the sync went on to its end (the Ctrl-C reached the follower's ssh too)
    assert (backup_of(connected) / "run.bin").read_bytes() == data
    nothing_left(connected)
