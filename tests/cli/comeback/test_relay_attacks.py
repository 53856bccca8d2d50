"""Whoever can write Drive, or answer as the ngrok API, can neither hang nor flood nor crash the relay (which runs at
every ssh connection), nor get the API key sent elsewhere: odd things are skipped or one warning line, and the
relay goes on to the next address."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from colab_bootstrap import drive_layout
from colabssh_cli.paths import Paths
from tests.cli.comeback.conftest import Speaker, code_for, host_key, put_code, record, relay

PINNED = host_key(1)
CONNECTED = "2026-12-01T10:00:00Z"


def _code_path(tmp_path):
    public = Paths.from_env().public_key.read_text()
    path = drive_layout.runtime_folder(tmp_path, public) / drive_layout.CODE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.parametrize("odd", ["fifo", "link to /dev/zero", "huge", "folder"])
def test_an_odd_code_file_on_drive_is_skipped_without_waiting_or_reading_it_whole(odd, client_key, tmp_path,
                                                                                  speakers):
    last = Speaker("last")
    speakers.append(last)
    record(last.port, PINNED, CONNECTED, tmp_path)
    path = _code_path(tmp_path)
    if odd == "fifo":
        os.mkfifo(path)
    elif odd == "link to /dev/zero":
        path.symlink_to("/dev/zero")
    elif odd == "huge":
        with open(path, "wb") as handle:
            handle.write(code_for(last.port + 1, PINNED).encode() + b"\n" + b"A" * (64 << 20))
    else:
        path.mkdir()
    done = relay(last.port, timeout=20)  # a FIFO opened for reading would block for good; /dev/zero never ends
    assert (done.returncode, done.stdout) == (0, "last\n"), done.stderr


class _FakeApi:
    """A TCP server on 127.0.0.1 that answers each connection with HOW (bytes, or a callable given the socket)."""

    def __init__(self, how) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.requests: list[bytes] = []
        self.how = how
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.requests.append(conn.recv(65536))
                if callable(self.how):
                    self.how(conn)
                else:
                    conn.sendall(self.how)
            except OSError:
                pass

    def close(self) -> None:
        self.server.close()


def _drip(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(600):  # one byte every 0.1 s: each read is quick, the whole answer takes a minute
        conn.sendall(b" ")
        time.sleep(0.1)


def test_an_api_that_is_not_http_or_drips_or_nests_deep_is_one_warning_then_the_next_address(client_key, tmp_path,
                                                                                             speakers):
    last = Speaker("last")
    speakers.append(last)
    record(last.port, PINNED, CONNECTED, None)
    deep = b"[" * 100000 + b"]" * 100000
    answers = {"not http": b"SSH-2.0-OpenSSH_9.2\r\n",
               "deep json": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                            + str(len(deep)).encode() + b"\r\n\r\n" + deep,
               "drip": _drip}
    for name, how in answers.items():
        api = _FakeApi(how)
        try:
            started = time.monotonic()
            done = relay(last.port, {"NGROK_API_KEY": "k", "COLABSSH_NGROK_API_URL": api.url}, timeout=30)
            took = time.monotonic() - started
        finally:
            api.close()
        assert (done.returncode, done.stdout) == (0, "last\n"), (name, done.stderr)
        assert "Traceback" not in done.stderr and "ngrok API" in done.stderr, (name, done.stderr)
        assert took < 15, (name, took)  # the API's one deadline (3 s), not the minute a dripping answer takes


def test_a_redirect_is_not_followed_so_the_key_goes_nowhere_else(client_key, tmp_path, speakers):
    last = Speaker("last")
    speakers.append(last)
    record(last.port, PINNED, CONNECTED, None)
    elsewhere = _FakeApi(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    api = _FakeApi(f"HTTP/1.1 302 Found\r\nLocation: {elsewhere.url}/endpoints\r\nContent-Length: 0\r\n\r\n"
                   .encode())
    try:
        done = relay(last.port, {"NGROK_API_KEY": "SECRETKEY123", "COLABSSH_NGROK_API_URL": api.url})
    finally:
        api.close()
        elsewhere.close()
    assert (done.returncode, done.stdout) == (0, "last\n")
    assert b"SECRETKEY123" in b"".join(api.requests)  # the API itself was asked with the key ...
    assert elsewhere.requests == []  # ... and nothing went where it pointed
    assert "redirect (302); not followed" in done.stderr and "SECRETKEY123" not in done.stderr


def test_a_code_file_written_now_is_still_read(client_key, tmp_path, speakers):
    """The checks refuse odd files, not codes: a fresh, plain code file with the pinned key is taken."""
    last, new = Speaker("last"), Speaker("new")
    speakers += [last, new]
    record(last.port, PINNED, CONNECTED, tmp_path)
    put_code(tmp_path, code_for(new.port, PINNED), time.time())
    assert relay(last.port).stdout == "new\n"
