"""ssh hides a ProxyCommand's stderr when connection sharing persists, so the relay keeps its reasons for colabssh's
own commands: written when it finds no runtime, removed once it reaches one, shown as the error of a failed ssh."""

from __future__ import annotations

import os
import time

from colabssh_cli.comeback import notes
from colabssh_cli.errors import UNREACHABLE
from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import explain_ssh_failure
from tests.cli.comeback.conftest import Speaker, code_for, dead_port, host_key, put_code, record, relay

PINNED, OTHER = host_key(1), host_key(2)
CONNECTED = "2026-12-01T10:00:00Z"
STDERR = "mm_receive_fd: recvmsg: expected received 1 got 0\nproxy dialer did not pass back a connection\n"


def test_a_relay_that_finds_nothing_leaves_its_reason_and_colabssh_shows_it(client_key, tmp_path):
    last = dead_port()
    record(last, PINNED, CONNECTED, tmp_path)
    assert relay(last).returncode == 255
    kept = notes.recent(Paths.from_env(), "colab")
    assert kept[-2:] == [f"no runtime of 'colab' answers (tried 127.0.0.1:{last})",
                         "hint: run the notebook, or connect the new code (`colabssh connect CODE`)"]
    error = explain_ssh_failure("colab", 255, STDERR)
    assert error.message == f"colab: no runtime of 'colab' answers (tried 127.0.0.1:{last})"
    assert error.hint == "run the notebook, or connect the new code (`colabssh connect CODE`)"
    assert error.exit_code == UNREACHABLE


def test_a_newer_runtime_with_another_key_is_the_reason_given(client_key, tmp_path):
    last = dead_port()
    record(last, PINNED, CONNECTED, tmp_path)
    put_code(tmp_path, code_for(dead_port(), OTHER), time.time())
    assert relay(last).returncode == 255
    error = explain_ssh_failure("colab", 255, STDERR)
    assert "the newest runtime on Drive" in error.message and "not the pinned" in error.message


def test_the_note_goes_once_the_relay_reaches_a_runtime(client_key, tmp_path, speakers):
    runtime = Speaker("up")
    speakers.append(runtime)
    record(runtime.port, PINNED, CONNECTED, tmp_path)
    notes.keep(Paths.from_env(), "colab", ["no runtime of 'colab' answers (tried 127.0.0.1:1)"])
    assert relay(runtime.port).stdout == "up\n"
    assert notes.recent(Paths.from_env(), "colab") == []
    assert "the runtime did not answer" in explain_ssh_failure("colab", 255, "Connection refused\n").message


def test_an_old_note_or_one_that_is_not_a_file_is_ignored(isolated_home):
    paths = Paths.from_env()
    notes.keep(paths, "colab", ["no runtime of 'colab' answers (tried 127.0.0.1:1)"])
    path = notes.note_path(paths, "colab")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    os.utime(path, (time.time() - notes.FRESH - 5,) * 2)
    assert notes.recent(paths, "colab") == []
    path.unlink()
    os.mkfifo(path)  # never waited on
    assert notes.recent(paths, "colab") == []


def test_where_the_relay_found_a_moved_runtime_is_kept_until_it_reaches_the_host_blocks_address(
        client_key, tmp_path, speakers):
    old, new = Speaker("old"), Speaker("new")
    speakers += [old, new]
    record(old.port, PINNED, CONNECTED, tmp_path)
    put_code(tmp_path, code_for(new.port, PINNED), time.time())
    assert relay(old.port).stdout == "new\n"
    assert notes.found(Paths.from_env(), "colab") == f"127.0.0.1:{new.port}"  # what `colabssh status` shows
    assert relay(new.port).stdout == "new\n"  # connected again: the Host block names it now
    assert notes.found(Paths.from_env(), "colab") == ""
