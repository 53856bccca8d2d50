"""Helpers of the relay's tests: runtimes that only say their name, codes on a Drive folder, sessions."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from colab_bootstrap import conncode, drive_layout
from colabssh_cli.paths import Paths
from colabssh_cli.session import Session, Transport, record_session
from tests.fakes import REPO


def host_key(seed: int) -> str:
    """A well-formed ed25519 public key line (no private half: these runtimes never do ssh)."""
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes([seed]) * 32
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


class Speaker:
    """A TCP 'runtime' on 127.0.0.1 that sends its name to every connection and closes it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(self.name.encode() + b"\n")

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def speakers() -> Iterator[list[Speaker]]:
    made: list[Speaker] = []
    yield made
    for speaker in made:
        speaker.close()


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def code_for(port: int, key: str, tunnel: str = "local") -> str:
    return conncode.encode(conncode.ConnectionInfo(host="127.0.0.1", port=port, user="root", hostkey=key,
                                                   tunnel=tunnel, content="/content", drive="",
                                                   python="/usr/bin/python3"))


def put_code(drive: Path, code: str, mtime: float, key_line: str | None = None) -> Path:
    """CODE where the cell leaves it for this laptop's key (or KEY_LINE's), with the given mtime."""
    public = key_line or Paths.from_env().public_key.read_text()
    path = drive_layout.runtime_folder(drive, public) / drive_layout.CODE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(code + "\n")
    os.utime(path, (mtime, mtime))
    return path


def record(port: int, key: str, connected_at: str, drive: Path | None) -> Session:
    session = Session(alias="colab", host="127.0.0.1", port=port, user="root", tunnel=Transport.LOCAL, hostkey=key,
                      connected_at=connected_at, drive_folder=str(drive or ""))
    record_session(Paths.from_env(), session)
    return session


def relay(port: int, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The relay as ssh runs it without fd passing (pipes: the pump), for the alias 'colab' at 127.0.0.1:PORT."""
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "colabssh_cli.comeback.relay", "colab", "127.0.0.1", str(port),
                           "local"], capture_output=True, text=True, stdin=subprocess.DEVNULL, env=full,
                          timeout=timeout)


NGROK_API = REPO / "tests" / "standins" / "ngrok-api"
API_KEY = "2fAkEaPiKeY0123456789_abcdefGHIJKLmnop"


def start_ngrok_api(cloud: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """The ngrok API stand-in serving CLOUD (the file the stand-in agents keep); returns it and its base URL."""
    api = subprocess.Popen([sys.executable, str(NGROK_API), "--cloud", str(cloud), "--key", API_KEY, *extra],
                           stdout=subprocess.PIPE, text=True)
    assert api.stdout is not None
    return api, api.stdout.readline().strip()


@pytest.fixture
def ngrok_api(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(the cloud file, the API's base URL) of a running ngrok API stand-in."""
    cloud = tmp_path / "ngrok-cloud.json"
    api, url = start_ngrok_api(cloud)
    yield cloud, url
    api.terminate()
    api.wait()
