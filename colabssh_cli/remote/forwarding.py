"""`colabssh forward PORT[:LOCAL_PORT]`: a runtime's port (TensorBoard, Jupyter, Gradio) on this machine.

By default one OpenSSH process, through the session's Host block (pinned host key, colabssh's key, the
cloudflared ProxyCommand when there is one): ``ssh -N -L 127.0.0.1:LOCAL:localhost:PORT ALIAS``, with its own
connection (``ControlPath none``), so the forward lives exactly as long as that process and never stays
behind in a shared master. ``ExitOnForwardFailure`` makes a local port that is taken an error, and ssh's
debug lines tell when the listener is up ("Entering interactive session"); the rest of them are dropped.
The remote end is ``localhost`` so servers bound to 127.0.0.1 or ::1 on the runtime are both reached.

Sessions through Google's `colab ssh --proxy-mode` allow ONE connection per runtime, so for them (and with
``--shared``) the forward is added to the session's shared connection instead (``ssh -O forward``, the master
started in a session of its own if none runs) and taken off again on the way out (``ssh -O cancel``).

Ctrl-C (SIGINT, or SIGTERM) stops it: ssh is started with SIGINT ignored (ssh keeps an ignored SIGINT
ignored), so a terminal's Ctrl-C reaches colabssh alone, which then ends the forward and says so.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import BAD_INPUT, UNREACHABLE, ColabsshError
from ..session import Transport
from . import process
from .process import Finished
from .runner import Remote, control_command, explain_ssh_failure, shared_connection_alive, shares_connections

Report = Callable[[str], None]
READY_TIMEOUT = 90.0  # the session's ConnectTimeout is 20 s; cloudflared may take longer to start
OPEN_TIMEOUT = READY_TIMEOUT * 4  # a --shared forward's first connection (colab may create the runtime first)
CONTROL_TIMEOUT = 30.0  # an `ssh -O forward|cancel` answer from the shared connection
READY_LINE = "Entering interactive session"
CHECK_EVERY = 5.0  # seconds between looks at the shared connection while a shared forward runs
_SPEC = re.compile(r"([0-9]{1,5})(?::([0-9]{1,5}))?")
_QUIET = ("debug", "Authenticated to ", "Transferred: ", "Bytes per second: ", "Warning: Permanently added")
_REFUSED = re.compile(r"channel [0-9]+: open failed: (.*)")


@dataclass(frozen=True)
class ForwardSpec:
    remote_port: int
    local_port: Optional[int] = None  # None: the runtime's port number, or a free one when that is taken


def parse_spec(spec: str) -> ForwardSpec:
    """``PORT`` or ``PORT:LOCAL_PORT``, ASCII digits, each 1-65535."""
    found = _SPEC.fullmatch(spec.strip())
    ports = [int(p) for p in found.groups() if p is not None] if found else []
    if not ports or not all(1 <= port <= 65535 for port in ports):
        raise ColabsshError(f"{spec!r} is not PORT or PORT:LOCAL_PORT",
                            "give the runtime's port, e.g. `colabssh forward 6006` or `colabssh forward 6006:16006` "
                            "(ports 1-65535)", BAD_INPUT)
    return ForwardSpec(*ports)


def local_port_free(port: int) -> bool:
    """Whether ssh could listen on 127.0.0.1:PORT now (it sets SO_REUSEADDR too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if os.name != "nt":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def choose_local_port(spec: ForwardSpec) -> int:
    if spec.local_port is not None:
        if not local_port_free(spec.local_port):
            raise ColabsshError(f"port {spec.local_port} on this machine is already in use",
                                f"pick another: `colabssh forward {spec.remote_port}:OTHER_PORT`", BAD_INPUT)
        return spec.local_port
    return spec.remote_port if local_port_free(spec.remote_port) else free_local_port()


def forward_spec(local_port: int, remote_port: int) -> str:
    return f"127.0.0.1:{local_port}:localhost:{remote_port}"


def forward_argv(remote: Remote, local_port: int, remote_port: int) -> list[str]:
    return remote.ssh_argv(options=("-N", "-v", "-o", "ExitOnForwardFailure=yes", "-o", "ControlMaster=no",
                                    "-o", "ControlPath=none", "-L", forward_spec(local_port, remote_port)))


def uses_shared_connection(remote: Remote, shared: bool) -> bool:
    """Colab's own transport allows one connection per runtime: its forwards go over the shared one."""
    if not (shared or remote.session.tunnel == Transport.COLAB_CLI):
        return False
    if not shares_connections():
        raise ColabsshError("this machine's OpenSSH has no shared connections (ControlMaster, as on Windows)",
                            "leave out --shared (a --via colab-cli session cannot forward from this machine)",
                            BAD_INPUT)
    return True


def local_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/"


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """While ssh starts: it inherits SIGINT ignored and keeps it so (a terminal's Ctrl-C is colabssh's)."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops a forward as Ctrl-C does (ssh is ended, not left behind)."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Forward:
    """One running ``ssh -N -L``; ``start`` returns once the local port listens."""

    def __init__(self, remote: Remote, local_port: int, remote_port: int, report: Report) -> None:
        self.remote = remote
        self.local_port = local_port
        self.remote_port = remote_port
        self.report = report
        self.process: Optional[process.Child] = None
        self.said: list[str] = []  # ssh's own lines, debug lines left out (the last 40)
        self.ready = False
        self._reader: Optional[threading.Thread] = None
        self._events: queue.Queue[Optional[str]] = queue.Queue()

    @property
    def url(self) -> str:
        return local_url(self.local_port)

    def start(self) -> str:
        argv = forward_argv(self.remote, self.local_port, self.remote_port)
        with _sigint_ignored():
            self.process = process.spawn(argv)
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        while True:
            try:
                event = self._events.get(timeout=READY_TIMEOUT)
            except queue.Empty:
                self.stop()
                raise ColabsshError(f"{self.remote.alias}: no forward after {READY_TIMEOUT:.0f} s",
                                    "the tunnel may be down: `colabssh doctor` checks it", UNREACHABLE) from None
            if event is None:
                self.process.wait()
                raise self._failure()
            if event == READY_LINE:
                self.ready = True
                return self.url

    def wait(self) -> int:
        """Until ssh ends by itself (it never does while the runtime answers); its exit code."""
        assert self.process is not None
        return self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            process.stop(self.process, 10.0)

    def ended_error(self) -> ColabsshError:
        """ssh ended while forwarding: the runtime went away (or ssh was killed)."""
        error = self._failure()
        return ColabsshError(f"the forward stopped: {error.message}", error.hint, error.exit_code)

    def _failure(self) -> ColabsshError:
        """Why ssh ended, from what it said (its debug lines left out)."""
        if self._reader is not None:
            self._reader.join(timeout=10)
        said = list(self.said)
        taken = next((line for line in said if "Address already in use" in line), "")
        if taken:
            return ColabsshError(f"port {self.local_port} on this machine is already in use ({taken})",
                                 f"pick another: `colabssh forward {self.remote_port}:OTHER_PORT`", BAD_INPUT)
        return explain_ssh_failure(self.remote.alias, 255, "\n".join(said))

    def _pump(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if READY_LINE in line:
                self._events.put(READY_LINE)
            if line.startswith(_QUIET) or not line.strip():
                continue
            self.said.append(line)
            del self.said[:-40]
            refused = _REFUSED.search(line)
            if refused:
                self.report(f"{self.url}: nothing answers on the runtime's port {self.remote_port} "
                            f"({refused.group(1)}); is the server running there?")
            elif self.ready:
                self.report(f"ssh: {line}")
        self._events.put(None)


class SharedForward:
    """A forward added to the session's shared connection (``ssh -O forward``) and taken off on the way out."""

    def __init__(self, remote: Remote, local_port: int, remote_port: int, report: Report) -> None:
        self.remote = remote
        self.local_port = local_port
        self.remote_port = remote_port
        self.report = report
        self.added = False
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return local_url(self.local_port)

    def start(self) -> str:
        paths, alias = self.remote.paths, self.remote.alias
        if not shared_connection_alive(paths, alias):
            self.report(f"{alias}: opening the shared connection")
            argv = self.remote.ssh_argv("true")
            try:  # its own session: the master it leaves behind must not get the terminal's Ctrl-C
                done = process.run(argv, new_session=True, timeout=OPEN_TIMEOUT)
            except process.TimedOut:
                raise ColabsshError(f"{alias}: no shared connection to the runtime after {OPEN_TIMEOUT:.0f} s",
                                    "the tunnel may be down: `colabssh doctor` checks it", UNREACHABLE) from None
            if done.returncode != 0:
                raise explain_ssh_failure(alias, done.returncode, done.stderr)
        done = self._control("forward")
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            if not shared_connection_alive(paths, alias):
                raise explain_ssh_failure(alias, 255, done.stderr)
            raise ColabsshError(f"the shared connection could not listen on 127.0.0.1:{self.local_port} ({detail})",
                                f"pick another port: `colabssh forward {self.remote_port}:OTHER_PORT`", BAD_INPUT)
        self.added = True
        return self.url

    def wait(self) -> int:
        """Until the shared connection ends (the runtime went away, or `ssh -O exit`)."""
        while shared_connection_alive(self.remote.paths, self.remote.alias):
            if self._stopped.wait(CHECK_EVERY):
                return 0
        return 255

    def stop(self) -> None:
        self._stopped.set()
        if self.added:
            self.added = False
            try:
                self._control("cancel")
            except OSError:
                pass

    def ended_error(self) -> ColabsshError:
        return ColabsshError(f"the forward stopped: {self.remote.alias}: the shared connection to the runtime ended",
                             "the tunnel is down or the runtime is gone: re-run the cell (or connect again), then "
                             "forward again", UNREACHABLE)

    def _control(self, command: str) -> Finished:
        """``ssh -O forward|cancel -L SPEC ALIAS`` against the shared connection (no answer: exit 255)."""
        return control_command(self.remote.paths, self.remote.alias, command,
                               ["-L", forward_spec(self.local_port, self.remote_port)], timeout=CONTROL_TIMEOUT)


def run_forward(remote: Remote, spec: ForwardSpec, on_ready: Callable[[str], None], report: Report,
                shared: bool = False) -> int:
    """Forward until Ctrl-C (returns 0) or until the connection ends by itself (raises)."""
    local = choose_local_port(spec)
    if spec.local_port is None and local != spec.remote_port:
        report(f"port {spec.remote_port} is taken on this machine: using {local}")
    kind = SharedForward if uses_shared_connection(remote, shared) else Forward
    forward = kind(remote, local, spec.remote_port, report)
    with _sigterm_interrupts():
        try:
            on_ready(forward.start())
            report(f"forwarding {remote.alias}:{spec.remote_port} to {forward.url} (Ctrl-C stops it)")
            forward.wait()
        except KeyboardInterrupt:
            forward.stop()
            report(f"stopped forwarding {remote.alias}:{spec.remote_port}")
            return 0
        finally:
            forward.stop()
    raise forward.ended_error()
