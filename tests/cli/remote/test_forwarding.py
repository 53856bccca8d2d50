"""`colabssh forward`: a real HTTP server on the runtime's side (this machine), fetched through OpenSSH's -L."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from colab_bootstrap import conncode
from colabssh_cli.app import main
from colabssh_cli.errors import BAD_INPUT, UNREACHABLE, ColabsshError
from colabssh_cli.remote import forwarding as forward_core
from colabssh_cli.remote.forwarding import ForwardSpec, parse_spec
from colabssh_cli.remote.runner import close_shared_connection, shared_connection_alive
from tests.cli.connection.test_colab_cli import colab_road, via_colab  # noqa: F401  (fixtures)
from tests.cli.connection.test_flow_e2e import close_masters_after  # noqa: F401  (fixture)
from tests.fakes import ngrok_env, pids_with

COLABSSH = str(Path(sys.executable).with_name("colabssh"))


@dataclass
class Lines:
    """A process's output lines, read as they come (no sleeps: each wait is on a line or the end)."""

    process: subprocess.Popen[str]
    seen: dict[str, list[str]] = field(default_factory=lambda: {"out": [], "err": []})
    _queues: dict[str, queue.Queue[str | None]] = field(default_factory=lambda: {"out": queue.Queue(),
                                                                                "err": queue.Queue()})

    def __post_init__(self) -> None:
        for name, pipe in (("out", self.process.stdout), ("err", self.process.stderr)):
            threading.Thread(target=self._pump, args=(name, pipe), daemon=True).start()

    def _pump(self, name: str, pipe) -> None:
        for line in pipe:
            self.seen[name].append(line)
            self._queues[name].put(line)
        self._queues[name].put(None)

    def wait_for(self, name: str, text: str, timeout: float = 60) -> str:
        while True:
            line = self._queues[name].get(timeout=timeout)
            if line is None:
                raise AssertionError(f"no line with {text!r}; the process said: {self.seen}")
            if text in line:
                return line.strip()

    def text(self, name: str) -> str:
        return "".join(self.seen[name])


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """`python -m http.server` on the runtime's machine (this one), on a port of its choosing."""
    root = tmp_path / "served"
    root.mkdir()
    process = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                                "--directory", str(root)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, stdin=subprocess.DEVNULL)
    assert process.stdout is not None
    line = process.stdout.readline()
    port = int(line.split(" port ")[1].split()[0])
    yield port, root
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture
def start_forward() -> Iterator[Callable[..., Lines]]:
    """Start `colabssh forward ARGS...` in a session of its own; whatever is left is ended afterwards."""
    started: list[Lines] = []

    def start(*args: str) -> Lines:
        process = subprocess.Popen([COLABSSH, "forward", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, stdin=subprocess.DEVNULL, start_new_session=True)
        started.append(Lines(process))
        return started[-1]

    yield start
    for lines in started:
        if lines.process.poll() is None:
            os.killpg(lines.process.pid, signal.SIGKILL)
            lines.process.wait()


def refuses(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(("text", "spec"), [
    ("6006", ForwardSpec(6006)), ("8888:18888", ForwardSpec(8888, 18888)), ("1:65535", ForwardSpec(1, 65535)),
    (" 7860 ", ForwardSpec(7860)),
])
def test_port_specs(text, spec):
    assert parse_spec(text) == spec


@pytest.mark.parametrize("text", ["", "0", "65536", "abc", "6006:", ":6006", "1:2:3", "６００６", "-1", "6006:0",
                                  "localhost:6006"])
def test_bad_port_specs_are_refused(text):
    with pytest.raises(ColabsshError) as caught:
        parse_spec(text)
    assert caught.value.exit_code == BAD_INPUT and "PORT:LOCAL_PORT" in caught.value.message


def test_the_runtimes_server_is_fetched_through_the_forward_and_ctrl_c_stops_it(connected, http_server, start_forward):
    port, root = http_server
    (root / "hello.txt").write_text("served on the runtime\n")
    forward = start_forward(str(port))
    url = forward.wait_for("out", "http://127.0.0.1:")
    local = int(url.rsplit(":", 1)[1].rstrip("/"))
    assert local != port  # the runtime's port is taken here (the runtime is this machine): a free one instead
    assert f"port {port} is taken on this machine: using {local}" in forward.text("err")
    with urllib.request.urlopen(url + "hello.txt", timeout=30) as response:
        assert response.read() == b"served on the runtime\n"
    spec = f"127.0.0.1:{local}:localhost:{port}"
    assert len(pids_with(spec)) == 1  # one ssh, with its own connection
    os.killpg(forward.process.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
    assert forward.process.wait(timeout=30) == 0
    assert f"stopped forwarding colab:{port}" in forward.wait_for("err", "stopped forwarding")
    assert refuses(local) and pids_with(spec) == []
    assert "Traceback" not in forward.text("err")


def test_a_chosen_local_port_and_sigterm(connected, http_server, start_forward):
    port, root = http_server
    (root / "index.html").write_text("<h1>tensorboard</h1>")
    local = free_port()
    forward = start_forward(f"{port}:{local}", "--name", "colab")
    assert forward.wait_for("out", "http://") == f"http://127.0.0.1:{local}/"
    with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=30) as response:
        assert b"tensorboard" in response.read()
    forward.process.terminate()
    assert forward.process.wait(timeout=30) == 0
    assert refuses(local) and pids_with(f"127.0.0.1:{local}:localhost:{port}") == []


def test_nothing_listening_on_the_runtime_is_said(connected, start_forward):
    port = free_port()  # nothing listens there (the local end is another port: the runtime is this machine)
    forward = start_forward(f"{port}:{free_port()}")
    url = forward.wait_for("out", "http://")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(url, timeout=30)
    line = forward.wait_for("err", "nothing answers")
    assert f"nothing answers on the runtime's port {port}" in line and "Connection refused" in line
    os.killpg(forward.process.pid, signal.SIGINT)
    assert forward.process.wait(timeout=30) == 0


def test_a_local_port_in_use_is_refused_before_ssh_starts(connected, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert main(["forward", f"8080:{busy}"]) == BAD_INPUT
    err = capsys.readouterr().err
    assert err == (f"colabssh: error: port {busy} on this machine is already in use\n"
                   f"  hint: pick another: `colabssh forward 8080:OTHER_PORT`\n")


def test_a_runtime_that_is_gone_is_unreachable(connected, capsys):
    connected.runtime.stop()
    close_shared_connection(connected.paths, "colab")
    assert main(["forward", str(free_port())]) == UNREACHABLE
    err = capsys.readouterr().err
    assert err.startswith("colabssh: error: colab: the runtime did not answer") and "  hint: " in err


def test_no_session(capsys):
    assert main(["forward", "6006"]) == BAD_INPUT
    assert capsys.readouterr().err.startswith("colabssh: error: no session yet\n  hint: ")


def test_the_forward_ends_with_an_error_when_the_runtime_goes_away(start_runtime, tmp_path, http_server,
                                                                    start_forward):
    port, _ = http_server
    running = start_runtime("ngrok", extra_env=ngrok_env(tmp_path))
    assert main(["connect", running.code, "--no-open"]) == 0
    forward = start_forward(f"{port}:{free_port()}")
    forward.wait_for("out", "http://")
    running.stop()  # its tunnel goes with it, and every connection through it
    assert forward.process.wait(timeout=60) == UNREACHABLE
    err = forward.text("err")
    assert "colabssh: error: the forward stopped: colab: the runtime did not answer" in err, err
    assert "  hint: " in err and "Traceback" not in err


def test_a_shared_forward_rides_the_sessions_master_and_leaves_it_running(connected, http_server, start_forward):
    port, root = http_server
    (root / "shared.txt").write_text("over the master\n")
    paths = connected.paths
    close_shared_connection(paths, "colab")  # forward opens the master itself, in a session of its own
    local = free_port()
    forward = start_forward(f"{port}:{local}", "--shared")
    assert forward.wait_for("out", "http://") == f"http://127.0.0.1:{local}/"
    assert "opening the shared connection" in forward.text("err")
    with urllib.request.urlopen(f"http://127.0.0.1:{local}/shared.txt", timeout=30) as response:
        assert response.read() == b"over the master\n"
    assert pids_with(f"127.0.0.1:{local}:localhost:{port}") == []  # no ssh of its own: the master listens
    os.killpg(forward.process.pid, signal.SIGINT)
    assert forward.process.wait(timeout=30) == 0
    assert refuses(local)  # the forward was cancelled...
    assert shared_connection_alive(paths, "colab")  # ...and the master, shared with VS Code and the rest, lives on


def test_a_shared_forward_ends_with_its_master(connected, http_server, start_forward):
    port, _ = http_server
    forward = start_forward(f"{port}:{free_port()}", "--shared")
    forward.wait_for("out", "http://")
    close_shared_connection(connected.paths, "colab")
    assert forward.process.wait(timeout=60) == UNREACHABLE  # noticed within CHECK_EVERY seconds
    assert "colabssh: error: the forward stopped: colab: the shared connection to the runtime ended" in \
        forward.text("err")


def test_a_colab_cli_session_forwards_over_its_one_connection(via_colab, http_server, start_forward):  # noqa: F811
    """Colab allows one SSH connection per runtime (the stand-in answers a second with HTTP 429)."""
    port, root = http_server
    (root / "tb.txt").write_text("tensorboard via colab\n")
    forward = start_forward(f"{port}:{free_port()}")
    url = forward.wait_for("out", "http://")
    with urllib.request.urlopen(url + "tb.txt", timeout=30) as response:
        assert response.read() == b"tensorboard via colab\n"
    assert "429" not in forward.text("err")
    os.killpg(forward.process.pid, signal.SIGINT)
    assert forward.process.wait(timeout=30) == 0


def test_a_shared_forward_to_a_runtime_that_never_answers_is_one_error(client_key, monkeypatch, capsys):
    """The first connection of a --shared forward hangs (a tunnel that accepts and then says nothing): after its
    time it is one line and UNREACHABLE, never subprocess.TimeoutExpired."""
    with socket.socket() as silent:  # a TCP port that accepts and never sends an SSH banner
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        info = conncode.ConnectionInfo(host="127.0.0.1", port=silent.getsockname()[1], user="root",
                                       hostkey=" ".join(client_key.split()[:2]), tunnel="local", content="/content",
                                       drive="", python="/usr/bin/python3")
        assert main(["connect", conncode.encode(info), "--no-check", "--no-open"]) == 0
        capsys.readouterr()
        monkeypatch.setattr(forward_core, "OPEN_TIMEOUT", 1.0)
        assert main(["forward", f"6006:{free_port()}", "--shared"]) == UNREACHABLE
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-2:] == ["colabssh: error: colab: no shared connection to the runtime after 1 s",
                                     "  hint: the tunnel may be down: `colabssh doctor` checks it"]
