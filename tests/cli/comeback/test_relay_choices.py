"""Which address the relay takes: the newest candidate that answers, among Drive's codes showing the pinned host
key, the ngrok API's tagged tunnels and the last address; never a newer runtime with another host key."""

from __future__ import annotations

from pathlib import Path

from colabssh_cli.comeback.finder import parse_time
from colabssh_cli.comeback.relay import HINT
from tests.cli.comeback.conftest import Speaker, code_for, dead_port, host_key, put_code, record, relay

PINNED = host_key(1)
OTHER = host_key(2)
CONNECTED = "2026-12-01T10:00:00Z"
BEFORE, AFTER = parse_time(CONNECTED) - 3600, parse_time(CONNECTED) + 3600  # an hour before / after CONNECTED


def test_a_newer_code_on_drive_with_the_pinned_key_is_taken(client_key, tmp_path, speakers):
    old, new = Speaker("old"), Speaker("new")
    speakers += [old, new]
    record(old.port, PINNED, CONNECTED, tmp_path)
    put_code(tmp_path, code_for(new.port, PINNED), AFTER)
    done = relay(old.port)
    assert (done.returncode, done.stdout) == (0, "new\n"), done.stderr
    assert f"'colab' is at 127.0.0.1:{new.port} now (its code on Drive: " in done.stderr


def test_an_older_code_on_drive_leaves_the_last_address_first(client_key, tmp_path, speakers):
    old, new = Speaker("last"), Speaker("drive")
    speakers += [old, new]
    record(old.port, PINNED, CONNECTED, tmp_path)
    put_code(tmp_path, code_for(new.port, PINNED), BEFORE)
    done = relay(old.port)
    assert (done.returncode, done.stdout, done.stderr) == (0, "last\n", "")


def test_a_newer_runtime_with_another_host_key_is_refused_with_the_reason(client_key, tmp_path, speakers):
    last, stranger = Speaker("last"), Speaker("stranger")
    speakers += [last, stranger]
    record(last.port, PINNED, CONNECTED, tmp_path)
    put_code(tmp_path, code_for(stranger.port, OTHER), AFTER)
    done = relay(last.port)
    assert (done.returncode, done.stdout) == (0, "last\n")
    assert "the newest runtime on Drive" in done.stderr and "refused; run `colabssh connect` with its code" \
        in done.stderr
    assert "shows host key SHA256:" in done.stderr and "not the pinned SHA256:" in done.stderr


def test_a_dead_candidate_is_skipped_for_the_next(client_key, tmp_path, speakers):
    last = Speaker("last")
    speakers.append(last)
    record(last.port, PINNED, CONNECTED, tmp_path)
    gone = dead_port()
    put_code(tmp_path, code_for(gone, PINNED), AFTER)
    done = relay(last.port)
    assert (done.returncode, done.stdout) == (0, "last\n")
    assert f"127.0.0.1:{gone} (its code on Drive: " in done.stderr and "does not answer" in done.stderr


def test_when_nothing_answers_the_relay_says_what_to_do_and_exits_255(client_key, tmp_path):
    last, gone = dead_port(), dead_port()
    record(last, PINNED, CONNECTED, tmp_path)
    put_code(tmp_path, code_for(gone, PINNED), AFTER)
    done = relay(last)
    assert done.returncode == 255 and done.stdout == ""
    assert f"no runtime of 'colab' answers (tried 127.0.0.1:{gone}, 127.0.0.1:{last})" in done.stderr
    assert HINT in done.stderr and "run the notebook, or connect the new code" in HINT


def test_a_host_block_newer_than_the_session_file_is_taken_as_it_is(client_key, tmp_path, speakers):
    """connect's own check runs ssh through the planned files before sessions.json names the new address."""
    recorded, given, drive = Speaker("recorded"), Speaker("given"), Speaker("drive")
    speakers += [recorded, given, drive]
    record(recorded.port, PINNED, CONNECTED, tmp_path)
    put_code(tmp_path, code_for(drive.port, PINNED), AFTER)
    done = relay(given.port)
    assert (done.returncode, done.stdout, done.stderr) == (0, "given\n", "")


def test_a_code_of_another_laptop_key_is_not_looked_at(client_key, tmp_path, speakers):
    last, other_laptop = Speaker("last"), Speaker("other laptop")
    speakers += [last, other_laptop]
    record(last.port, PINNED, CONNECTED, tmp_path)
    put_code(tmp_path, code_for(other_laptop.port, OTHER), AFTER, key_line=host_key(9))
    done = relay(last.port)
    assert (done.returncode, done.stdout, done.stderr) == (0, "last\n", "")


def test_without_a_drive_folder_only_the_last_address_is_tried(client_key, tmp_path, speakers):
    last, drive = Speaker("last"), Speaker("drive")
    speakers += [last, drive]
    record(last.port, PINNED, CONNECTED, None)
    put_code(tmp_path, code_for(drive.port, PINNED), AFTER)
    assert relay(last.port).stdout == "last\n"


def test_the_relay_stays_light(client_key):
    """It runs at every ssh connection: no typer, no rich, no subprocess, no HTTP unless NGROK_API_KEY is set."""
    import subprocess
    import sys

    from tests.fakes import REPO

    probe = ("import sys, runpy; sys.argv = ['relay', 'colab', '127.0.0.1', '1', 'local']\n"
             "try:\n    runpy.run_module('colabssh_cli.comeback.relay', run_name='__main__')\n"
             "except SystemExit:\n    pass\nprint(' '.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
                               "PYTHONPATH": str(REPO)})
    loaded = set(done.stdout.split())
    assert "colabssh_cli.comeback.finder" in loaded and "no runtime of 'colab' answers" in done.stderr
    assert not loaded & {"typer", "rich", "click", "subprocess", "paramiko", "urllib.request", "asyncio"}


def test_with_fd_passing_the_relay_hands_over_the_connected_socket_and_exits(client_key, tmp_path, speakers):
    """As OpenSSH runs it with ProxyUseFdpass: stdin and stdout one unix socket, on which ssh receives the fd."""
    import os
    import socket
    import subprocess
    import sys

    from tests.fakes import REPO

    new = Speaker("new")
    speakers.append(new)
    last = dead_port()
    record(last, PINNED, CONNECTED, tmp_path)
    put_code(tmp_path, code_for(new.port, PINNED), AFTER)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        done = subprocess.run([sys.executable, "-m", "colabssh_cli.comeback.relay", "colab", "127.0.0.1",
                               str(last), "local"], stdin=theirs, stdout=theirs,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                              timeout=30)
        assert done.returncode == 0, done.stderr  # it exited: no relay in the data path
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    with socket.socket(fileno=fds[0]) as passed:
        assert passed.getpeername()[1] == new.port and passed.recv(100) == b"new\n"


def test_the_runtimes_own_code_on_drive_is_the_last_address_and_says_nothing(client_key, tmp_path, speakers):
    last = Speaker("last")
    speakers.append(last)
    record(last.port, PINNED, CONNECTED, tmp_path)
    put_code(tmp_path, code_for(last.port, PINNED), AFTER)
    done = relay(last.port)
    assert (done.returncode, done.stdout, done.stderr) == (0, "last\n", "")
