"""Starting local programs: the one module of the laptop side that imports ``subprocess``.

Everything colabssh runs (ssh, scp, rsync, ssh-keygen, Google's ``colab``, the editor's CLI, a local
runtime for `colabssh try`) goes through these few functions, so a reader finds in one place how a
child is started (stdin closed unless it is fed), how output is read (whole, or line by line as it
comes, without ever blocking the child on a full pipe), and how a child is stopped (SIGTERM, then
SIGKILL after a grace period; always reaped).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Optional, Union

from ..errors import MISSING_TOOL, ColabsshError

LineSink = Callable[[str], None]
Child = subprocess.Popen  # a started child (``spawn``); stop it with ``stop``
PIPE = subprocess.PIPE  # for ``spawn``: give the child a pipe
DEVNULL = subprocess.DEVNULL  # for ``spawn``: nothing (stdin at end of file; output dropped)
STDOUT = subprocess.STDOUT  # for ``spawn``'s stderr: into the same pipe as stdout
Stream = Union[int, IO[Any], None]


class TimedOut(Exception):
    """The program did not end within its time limit (it has been killed and reaped)."""

    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        super().__init__(f"{argv[0]} did not end within {timeout:g} s")
        self.argv = list(argv)
        self.timeout = timeout


@dataclass(frozen=True)
class Finished:
    """A program that ran to its end: its exit code and everything it wrote."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class FinishedBytes:
    """``Finished``, with the output kept as bytes (``run_bytes``)."""

    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes


def require(program: str, message: str, hint: str) -> str:
    """PROGRAM's path on PATH; a missing one is one ColabsshError (MESSAGE, HINT, exit code MISSING_TOOL)."""
    found = shutil.which(program)
    if not found:
        raise ColabsshError(message, hint, MISSING_TOOL)
    return found


def _env(env: Optional[Mapping[str, str]]) -> Optional[dict[str, str]]:
    return None if env is None else dict(env)


def run(argv: Sequence[str], *, input: Optional[str] = None, timeout: Optional[float] = None,
        env: Optional[Mapping[str, str]] = None, cwd: Optional[Path] = None, merge_stderr: bool = False,
        new_session: bool = False) -> Finished:
    """Run ARGV to its end and return its text output (undecodable bytes replaced).

    Stdin is closed unless INPUT is given. Raises ``TimedOut`` after TIMEOUT seconds and ``OSError``
    (``FileNotFoundError``: no such program) when it cannot start. NEW_SESSION: the child (and what it
    leaves behind, such as an ssh master) does not get this terminal's Ctrl-C.
    """
    try:
        done = subprocess.run(list(argv), input=input, stdin=None if input is not None else subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                              text=True, errors="replace", timeout=timeout, env=_env(env), cwd=cwd,
                              start_new_session=new_session)
    except subprocess.TimeoutExpired:
        raise TimedOut(argv, timeout or 0.0) from None
    return Finished(list(argv), done.returncode, done.stdout or "", done.stderr or "")


def run_bytes(argv: Sequence[str], *, input: Optional[bytes] = None, timeout: Optional[float] = None,
              env: Optional[Mapping[str, str]] = None) -> FinishedBytes:
    """``run`` for programs whose input or output is bytes (files sent through ssh's stdin)."""
    try:
        done = subprocess.run(list(argv), input=input, stdin=None if input is not None else subprocess.DEVNULL,
                              capture_output=True, timeout=timeout, env=_env(env))
    except subprocess.TimeoutExpired:
        raise TimedOut(argv, timeout or 0.0) from None
    return FinishedBytes(list(argv), done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class Attached:
    """A program that ran on this terminal (``run_attached``): its exit code and the end of what it said on stderr."""

    returncode: int
    stderr: str  # the last STDERR_KEPT bytes, decoded; the user saw all of it as it came


STDERR_KEPT = 64 << 10  # bytes of an attached program's stderr kept for advice
ATTACHED_DRAIN_SECONDS = 2.0  # after it ends, how long its stderr may take to close (a child of it may hold it)


def run_attached(argv: Sequence[str], env: Optional[Mapping[str, str]] = None) -> Attached:
    """Run ARGV on this terminal (its stdin and stdout), and return its exit code and the end of its stderr.

    Its stderr is copied to ours as it comes, byte for byte (a prompt without a newline shows at once), and its
    end is kept: what ssh says when it fails (a changed host key, a refused connection) is what colabssh's advice
    reads, while the user has already seen it. Ctrl-C: the child (which had it too, on a terminal) gets half a
    second to end, then is stopped; the KeyboardInterrupt is raised."""
    sys.stderr.flush()  # what colabssh said before comes before what the child says
    child = subprocess.Popen(list(argv), stderr=subprocess.PIPE, env=_env(env))
    assert child.stderr is not None
    kept = bytearray()
    thread = threading.Thread(target=_copy_stderr, args=(child.stderr.fileno(), kept), daemon=True)
    thread.start()
    try:
        returncode = child.wait()
    except KeyboardInterrupt:
        if wait(child, 0.5) is None:
            stop(child, grace=0.5)
        _join([thread], DRAIN_SECONDS)
        raise
    _join([thread], ATTACHED_DRAIN_SECONDS)
    if not thread.is_alive():  # else it still reads the pipe: its fd must not be closed (and reused) under it
        child.stderr.close()
    return Attached(returncode, bytes(kept).decode("utf-8", errors="replace"))


def _copy_stderr(fd: int, kept: bytearray) -> None:
    """FD -> our stderr (fd 2) as it comes, until its end; its last STDERR_KEPT bytes into KEPT."""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:
            return
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            try:
                view = view[os.write(2, view):]
            except OSError:  # our stderr is gone: keep reading, so the child never blocks on a full pipe
                break
        kept += chunk
        del kept[:-STDERR_KEPT]


def spawn(argv: Sequence[str], *, stdin: Stream = DEVNULL, stdout: Stream = DEVNULL, stderr: Stream = PIPE,
          env: Optional[Mapping[str, str]] = None, text: bool = False, new_session: bool = False,
          cwd: Optional[Path] = None) -> Child:
    """Start ARGV and return at once: for children that live beside colabssh (a forward, a proxy, a runtime)."""
    return subprocess.Popen(list(argv), stdin=stdin, stdout=stdout, stderr=stderr, env=_env(env), text=text,
                            start_new_session=new_session, cwd=cwd)


def wait(child: Child, timeout: Optional[float] = None) -> Optional[int]:
    """The child's exit code once it has ended, or None when it is still running after TIMEOUT seconds."""
    try:
        return child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def stop(child: Child, grace: float = 5.0) -> None:
    """SIGTERM a child, SIGKILL it after GRACE seconds; reaped either way."""
    if child.poll() is not None:
        return
    child.terminate()
    if wait(child, grace) is None:
        child.kill()
        child.wait()


DRAIN_SECONDS = 0.25  # after Ctrl-C, how long ``stream`` waits for the stopped child's last lines


def _join(threads: Sequence[threading.Thread], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))


def stream(argv: Sequence[str], *, input: Optional[bytes] = None, on_stdout: Optional[LineSink] = None,
           on_stderr: Optional[LineSink] = None, keep_stderr: int = 50,
           env: Optional[Mapping[str, str]] = None, timeout: Optional[float] = None) -> tuple[int, list[str]]:
    """Run ARGV, handing each output line to a callback as it arrives.

    Returns the exit code and the last KEEP_STDERR lines of stderr. A callback that raises is dropped,
    but its pipe is still read to its end (or the child would block on a full pipe and never end); the
    error is raised once the child has ended. Ctrl-C stops the child (half a second's grace), hands on the lines
    it wrote before it ended (DRAIN_SECONDS at most), and is raised.
    Past TIMEOUT seconds the child is killed and ``TimedOut`` raised, without waiting for its pipes to close
    (an ssh master that shares the connection may hold them open).
    """
    child = subprocess.Popen(list(argv), stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(env))
    stderr_tail: list[str] = []
    sink_errors: list[BaseException] = []

    def pump(pipe: IO[bytes], sink: Optional[LineSink], keep: Optional[list[str]]) -> None:
        for raw in pipe:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            if keep is not None:
                keep.append(line)
                del keep[:-keep_stderr]
            if sink is not None:
                try:
                    sink(line)
                except BaseException as exc:  # noqa: BLE001 - kept for the caller's thread
                    sink_errors.append(exc)
                    sink = None

    assert child.stdout is not None and child.stderr is not None
    threads = [threading.Thread(target=pump, args=(child.stdout, on_stdout, None), daemon=True),
               threading.Thread(target=pump, args=(child.stderr, on_stderr, stderr_tail), daemon=True)]
    for thread in threads:
        thread.start()
    if input is not None:
        assert child.stdin is not None
        try:
            child.stdin.write(input)
            child.stdin.close()
        except BrokenPipeError:
            pass
    try:
        returncode = child.wait(timeout)
    except KeyboardInterrupt:  # Ctrl-C is answered within 2 s: the child gets half a second to go, then SIGKILL
        stop(child, grace=0.5)
        _join(threads, DRAIN_SECONDS)  # what it wrote before it ended is handed on (a caller may need it)
        raise
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        raise TimedOut(argv, timeout or 0.0) from None
    for thread in threads:
        thread.join()
    if sink_errors:
        raise sink_errors[0]
    return returncode, stderr_tail
