"""What the sshd behind a public tunnel lets a client do: VS Code's forwarding (ssh -D, and -L to a TCP port or
a Unix socket) and `colabssh forward`'s (-L) work; -R, X11 and anything else are refused (real OpenSSH)."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import client_key_path, ssh, ssh_argv


class EchoServer:
    """A TCP (or Unix socket) server on the runtime's side that echoes what it reads, one line at a time."""

    def __init__(self, unix_path: Path | None = None) -> None:
        family = socket.AF_UNIX if unix_path else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(str(unix_path) if unix_path else ("127.0.0.1", 0))
        self.sock.listen(8)
        self.address = unix_path if unix_path else self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(1024)
                conn.sendall(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connect_when_listening(port: int, timeout: float = 15.0) -> socket.socket:
    """A connection to the client's forwarded port, once ssh listens there (polled with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _forwarding(runtime, home: Path, *spec: str) -> subprocess.Popen[bytes]:
    argv = ssh_argv(runtime.info, client_key_path(home), "-N", "-o", "ExitOnForwardFailure=yes", *spec)
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)


def test_local_forwarding_to_a_tcp_port_works(runtime, isolated_home, echo):
    """`colabssh forward` and the Ports view of VS Code: ssh -L."""
    port = _free_port()
    client = _forwarding(runtime, isolated_home, "-L", f"127.0.0.1:{port}:127.0.0.1:{echo.address}")
    try:
        with _connect_when_listening(port) as sock:
            sock.sendall(b"through -L\n")
            assert sock.recv(1024) == b"through -L\n"
    finally:
        _stop(client)


def test_dynamic_forwarding_works(runtime, isolated_home, echo):
    """VS Code's Remote-SSH runs `ssh -T -D PORT` and reaches its server through that SOCKS proxy."""
    port = _free_port()
    client = _forwarding(runtime, isolated_home, "-D", f"127.0.0.1:{port}")
    try:
        with _connect_when_listening(port) as sock:
            sock.sendall(b"\x05\x01\x00")  # SOCKS5, one method: no authentication
            assert sock.recv(2) == b"\x05\x00"
            sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", echo.address))
            reply = sock.recv(10)
            assert reply[:2] == b"\x05\x00", reply  # succeeded: the sshd opened the direct-tcpip channel
            sock.sendall(b"through -D\n")
            assert sock.recv(1024) == b"through -D\n"
    finally:
        _stop(client)


def test_local_forwarding_to_a_unix_socket_works(runtime, isolated_home, tmp_path):
    """remote.SSH.remoteServerListenOnSocket: VS Code's server listens on a Unix socket, reached with ssh -L."""
    server = EchoServer(tmp_path / "server.sock")
    port = _free_port()
    client = _forwarding(runtime, isolated_home, "-L", f"127.0.0.1:{port}:{server.address}")
    try:
        with _connect_when_listening(port) as sock:
            sock.sendall(b"through -L to a socket\n")
            assert sock.recv(1024) == b"through -L to a socket\n"
    finally:
        _stop(client)
        server.close()


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "UNIX"])
def test_remote_forwarding_is_refused(runtime, isolated_home, echo, tmp_path, listen):
    """Nothing of colabssh or VS Code listens on the runtime for the laptop (-R): the sshd refuses it."""
    where = str(tmp_path / "remote.sock") if listen == "UNIX" else listen
    result = ssh(runtime.info, client_key_path(isolated_home), "true", "-o", "ExitOnForwardFailure=yes",
                 "-R", f"{where}:127.0.0.1:{echo.address}")
    assert result.returncode == 255
    assert "remote port forwarding failed" in result.stderr, result.stderr
    assert not (tmp_path / "remote.sock").exists()


def test_x11_forwarding_is_refused(runtime, isolated_home, tmp_path):
    """`ssh -Y` asks for X11 forwarding whether or not this machine has xauth (without one, the client makes up
    a cookie): the test names a missing xauth, so it runs the same on every machine."""
    env = {**os.environ, "DISPLAY": ":0"}
    no_xauth = str(tmp_path / "no-xauth-here")
    result = ssh(runtime.info, client_key_path(isolated_home), "echo DISPLAY=${DISPLAY:-none}", "-Y", "-v",
                 "-o", f"XAuthLocation={no_xauth}", env=env)
    assert result.returncode == 0, result.stderr
    assert "Requesting X11 forwarding" in result.stderr  # the client did ask
    assert "X11 forwarding request failed" in result.stderr
    assert result.stdout.strip() == "DISPLAY=none"
