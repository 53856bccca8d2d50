"""The first contact through Google's `colab ssh --proxy-mode`: colab run by colabssh, its stdin and stdout one end
of a socket pair that paramiko (remote/preflight.py) logs in over, its stderr read as it comes.

The first contact skips what colab writes before the SSH banner, as OpenSSH does (the real CLI's update notice is
several lines on stdout), waits while colab creates the session's runtime (minutes), and never ends colab in the
middle of that (colab's store learns the runtime's name only at its end): ``Contact`` tells connect whether colab
created a runtime, which connect then stops should it not finish (connection/colab_cli.py).
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import MISSING_TOOL, UNREACHABLE, ColabsshError
from ..remote import preflight, process
from ..remote.advice import CREATING, INSTALL_HINT, LOGIN_PROMPT, READY, colab_message, explain_colab_stderr

FIRST_CONTACT_TIMEOUT = 300.0  # for the SSH banner, from colab's start, or from its runtime being made
CREATE_LIMIT = 900.0  # while colab creates a runtime (minutes; its own requests give up well before this)
PRE_BANNER_LINES = 1024  # lines before the SSH banner that OpenSSH accepts too (SSH_MAX_PRE_BANNER_LINES)
PRE_BANNER_BYTES = 256 * 1024
PRE_BANNER_SHOWN = 20  # of those, passed on as colab's progress (its update notice)

Report = Callable[[str], None]


# ---- the first contact ------------------------------------------------------------------------------------


@dataclass
class Contact:
    """What colab did during one connect: whether it created the runtime of SESSION, which connect then stops
    should it not finish (a runtime uses compute units for as long as it runs)."""

    session: str
    created: bool = False  # colab made the runtime and stored it under SESSION: `colab stop -s SESSION` stops it
    left_creating: bool = False  # colabssh stopped waiting while colab was still creating it (told the user)


class _NoBanner(Exception):
    """colab wrote to the SSH stream, and no SSH banner came."""


class _ColabBridge:
    """`colab ssh --proxy-mode`, run by colabssh: its stdin and stdout one end of a socket pair, its stderr read
    as it comes (its progress reported, its errors kept, its creating a runtime followed)."""

    def __init__(self, argv: list[str], session: str, report: Report) -> None:
        self.session = session
        self.report = report
        self.lines: list[str] = []
        self.creating = False  # colab said it creates the session's runtime (the session was not in its store)
        self.ready = False  # ... and that the runtime is made and stored under the session's name
        self.ready_at = 0.0
        self.login = False  # colab asks for a Google login: it cannot here (its stdin is the ssh stream)
        self.ended = False  # colab's stderr ended: colab is gone
        self.changed = threading.Condition()
        self.started = time.monotonic()
        self.ours, theirs = socket.socketpair()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        try:
            self.process = process.spawn(argv, stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=process.PIPE,
                                         new_session=True)
        except OSError as exc:
            self._close()
            raise ColabsshError(f"cannot start {argv[0]}: {exc.strerror}", INSTALL_HINT, MISSING_TOOL) from None
        finally:
            theirs.close()
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()

    # -- colab's stderr

    def _read_stderr(self) -> None:
        creating = CREATING.format(session=self.session)
        assert self.process.stderr is not None
        try:
            for raw in self.process.stderr:
                line = raw.decode("utf-8", errors="replace").rstrip()
                with self.changed:
                    self.lines.append(line)
                    if creating in line:
                        self.creating = True
                    elif self.creating and line.strip() == READY:
                        self.ready, self.ready_at = True, time.monotonic()
                    elif LOGIN_PROMPT.search(line) and not self.login:
                        self.login = True  # asked before Colab assigns a runtime: nothing is left to stop
                        self.process.terminate()
                    self.changed.notify_all()
                self._wake()
                if line.startswith("[colab] ") and explain_colab_stderr(line, self.session) is None:
                    self.report(f"  colab: {line.removeprefix('[colab] ')}")
        finally:
            with self.changed:
                self.ended = True
                self.changed.notify_all()
            self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except OSError:  # full (nobody is waiting), or closed
            pass

    def stderr(self) -> str:
        with self.changed:
            return "\n".join(self.lines)

    def mid_creation(self) -> bool:
        """colab is creating the runtime now: Colab has (or is about to have) assigned it, and colab's store does
        not know its name yet, so a colab cut off now leaves a runtime that `colab stop -s NAME` cannot stop."""
        return self.creating and not (self.ready or self.login or self.ended)

    def _remaining(self, timeout: float) -> float:
        with self.changed:
            if self.mid_creation():
                return self.started + CREATE_LIMIT - time.monotonic()
            return max(self.started, self.ready_at) + timeout - time.monotonic()

    # -- colab's stdout: the SSH stream

    def read_to_banner(self, timeout: float) -> bytes:
        """Skip the lines colab writes before the SSH banner, as OpenSSH does (RFC 4253 4.2; the real CLI's update
        notice is several lines on stdout), and return the bytes from the banner on.

        Waits TIMEOUT from colab's start, or from the runtime being ready when colab creates one; while colab
        creates it (minutes), up to CREATE_LIMIT. paramiko alone would give each line after the first 2 s."""
        buffer, lines, skipped = b"", 0, 0
        while True:
            while not buffer.startswith(b"SSH-") and b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                lines, skipped = lines + 1, skipped + len(line) + 1
                shown = line.decode("utf-8", errors="replace").strip()
                if shown and lines <= PRE_BANNER_SHOWN:
                    self.report(f"  colab: {shown.removeprefix('[colab] ')}")
            if buffer.startswith(b"SSH-"):
                return buffer
            if lines > PRE_BANNER_LINES or skipped + len(buffer) > PRE_BANNER_BYTES:
                from colab_bootstrap.units import count  # only for this message: connect's import budget

                wrote = f"{count(lines, 'line')} and {count(skipped + len(buffer), 'byte')}"
                raise _NoBanner(f"colab wrote {wrote} to the SSH stream, and no SSH banner")
            remaining = self._remaining(timeout)
            if remaining <= 0:
                raise TimeoutError("no SSH banner")
            readable, _, _ = select.select([self.ours.fileno(), self._wake_r], [], [], remaining)
            if self._wake_r in readable:
                os.read(self._wake_r, 4096)
            if self.ours.fileno() in readable:
                data = self.ours.recv(65536)
                if not data:
                    raise EOFError("colab ended before the SSH banner")
                buffer += data

    # -- the end

    def finish(self, contact: Contact) -> None:
        """End colab, but never while it creates a runtime (see mid_creation): wait for it to finish, so that
        connect can stop that runtime; a second Ctrl-C leaves colab to finish alone, and says so."""
        self.ours.close()  # colab's stdin ends: a colab that bridges closes its WebSocket and exits
        interrupted = False
        try:
            with self.changed:
                limit = self.started + CREATE_LIMIT - time.monotonic()
                waiting = self.mid_creation() and limit > 0
            if waiting:
                self.report(f"colab is still creating the runtime of colab session '{self.session}': waiting for it "
                            "to finish, so that it can be stopped (Ctrl-C again leaves colab to finish it alone)")
                with self.changed:
                    self.changed.wait_for(lambda: not self.mid_creation(), timeout=limit)
        except KeyboardInterrupt:
            interrupted = True
        with self.changed:
            contact.created = contact.created or (self.creating and self.ready)
            left = self.mid_creation()
        if left:
            contact.left_creating = True
            self.report(f"colab is left creating the runtime of colab session '{self.session}' (pid "
                        f"{self.process.pid}): once it is made it uses compute units until `colab stop -s "
                        f"{self.session}` ends it (`colab sessions` lists it)")
        else:
            _end(self.process)
            self.reader.join(timeout=5)
            self._close()
        if interrupted:
            raise KeyboardInterrupt

    def _close(self) -> None:
        self.ours.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


def _end(child: process.Child, grace: float = 15.0) -> None:
    """Wait for colab to end (the runtime allows one connection: nothing else may connect before), then stop it."""
    if process.wait(child, grace) is None:
        process.stop(child, 5.0)


def first_contact(argv: list[str], hostname: str, key_path: Path, session: str, report: Report,
                  timeout: Optional[float] = None, contact: Optional[Contact] = None) -> str:
    """Log in through colab (ARGV: its ProxyCommand) with colabssh's key; return the host key it showed.

    The host key is taken as presented ("trust on first use"): the way to it is Colab's WebSocket, opened with
    the user's Google credentials over TLS to Google, so what answers is the runtime Colab assigned to SESSION.
    colab's stderr is read as it comes: its progress is reported, its errors explained. CONTACT learns whether
    colab created the session's runtime; colab is never cut off while it creates one (a Ctrl-C waits for it).
    """
    pkey = preflight.client_key(key_path)
    timeout = FIRST_CONTACT_TIMEOUT if timeout is None else timeout
    contact = contact if contact is not None else Contact(session)
    colab = _ColabBridge(argv, session, report)
    failure: Optional[BaseException] = None
    presented = ""
    try:
        pending = colab.read_to_banner(timeout)
        presented = preflight.login_over(preflight.Replayed(colab.ours, pending), hostname, "root", pkey)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes one explained error; Ctrl-C after cleanup
        failure = exc
    finally:
        colab.finish(contact)
    if failure is None:
        return presented
    if not isinstance(failure, Exception):
        raise failure
    if contact.left_creating:
        raise ColabsshError(f"colab was still creating the runtime of colab session '{session}' after "
                            f"{round(CREATE_LIMIT / 60)} min",
                            f"`colab sessions` lists it once it is made: then connect again to use it, or `colab stop "
                            f"-s {session}` ends it", UNREACHABLE)
    raise _explain_first_contact(failure, colab.stderr(), session, argv, timeout)


def _explain_first_contact(exc: BaseException, stderr: str, session: str, argv: list[str],
                           timeout: float) -> ColabsshError:
    known = explain_colab_stderr(stderr, session)
    if known is not None:
        return known
    if preflight.is_refused_key(exc):
        return ColabsshError(f"the runtime of colab session '{session}' refused colabssh's key",
                             "colab sends the key given with -i to the runtime: check that the ProxyCommand still "
                             "has it, and that `colab ssh -s " + session + "` works in a terminal", UNREACHABLE)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        detail = f"no SSH answer within {timeout:.0f} s"
    elif isinstance(exc, _NoBanner):
        detail = str(exc)
    else:
        detail = colab_message(stderr) or (str(exc).rstrip(".") or type(exc).__name__)
    return ColabsshError(f"`{' '.join(argv[:5])}` gave no connection to the runtime ({detail})",
                         f"run `colab ssh -s {session}` in a terminal to see what colab says; `colab sessions` lists "
                         "the runtimes", UNREACHABLE)
