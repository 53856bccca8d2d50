"""Bad input on the runtime side: one clear message and a hint, a non-zero exit, no traceback, nothing left running."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from colab_bootstrap import sshd
from colab_bootstrap.errors import BootstrapError
from colab_bootstrap.sshd import program
from tests.cellrunner import RunningCell
from tests.fakes import alive, assert_clean_failure, client_key_path, colab_env, pids_with, ssh, sshd_listeners


def _finish(running: RunningCell, timeout: float = 60) -> tuple[int, str]:
    running.process.wait(timeout=timeout)
    running.wait_for(lambda line: False, timeout=timeout)
    return running.process.returncode, running.output


def _fails(start_runtime, env: dict[str, str], *expected: str, cell: Path | None = None) -> RunningCell:
    running = start_runtime("local", env, expect_code=False, cell=cell)
    code, output = _finish(running)
    assert code == 1, output
    assert_clean_failure(output)
    assert "\n  hint: " in output
    for text in expected:
        assert text in output, text
    assert "colabssh connect" not in output
    return running


def test_unknown_tunnel_kind_from_the_environment(start_runtime):
    _fails(start_runtime, {"COLABSSH_TUNNEL": "wireguard"}, "unknown tunnel kind 'wireguard' (from COLABSSH_TUNNEL)",
           "ngrok, cloudflared, local")


def test_a_busy_port(start_runtime):
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        running = _fails(start_runtime, {"COLABSSH_PORT": str(port)},
                         f"port {port} on 127.0.0.1 is in use by pid {os.getpid()} (", "COLABSSH_PORT")
    assert pids_with(str(running.state / "sshd_config")) == []


@pytest.mark.parametrize("value", ["abc", "70000", "-1", "22 ", "２２"])
def test_a_port_that_is_not_one(start_runtime, value):
    _fails(start_runtime, {"COLABSSH_PORT": value}, "is not a port number")


def test_a_missing_sshd_is_reported_and_apt_is_never_run(start_runtime, tmp_path):
    """COLABSSH_SSHD=sshd looks on PATH only and never installs; PATH here has no sshd and no apt-get."""
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    _fails(start_runtime, {"PATH": str(empty_bin), "COLABSSH_SSHD": "sshd"},
           "COLABSSH_SSHD=sshd is not an sshd program this machine has", "openssh-server")


def test_a_missing_sshd_path(start_runtime, tmp_path):
    _fails(start_runtime, {"COLABSSH_SSHD": str(tmp_path / "no" / "sshd")}, "is not an sshd program")


def test_sshd_outside_path_is_still_found(start_runtime, isolated_home):
    """A plain user's PATH often lacks /usr/sbin: the cell looks there too."""
    running = start_runtime("local", {"PATH": "/usr/bin:/bin"})
    result = ssh(running.info, client_key_path(isolated_home), "echo ok")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_a_drive_folder_that_does_not_exist(start_runtime, tmp_path):
    _fails(start_runtime, {"COLABSSH_DRIVE": str(tmp_path / "no-drive")}, "is not an existing folder")


def test_no_public_key_at_all(start_runtime, tmp_path):
    from colabssh_cli.app import main

    cell = tmp_path / "generic.py"
    assert main(["bootstrap", "--tunnel", "local", "--key-from-secret", "--out", str(cell)]) == 0
    _fails(start_runtime, colab_env(tmp_path, {}), "no public key to authorise", "COLABSSH_PUBKEY", cell=cell)


def test_a_colab_secret_that_is_not_a_public_key(start_runtime, tmp_path):
    from colabssh_cli.app import main

    cell = tmp_path / "generic.py"
    assert main(["bootstrap", "--tunnel", "local", "--key-from-secret", "--out", str(cell)]) == 0
    _fails(start_runtime, colab_env(tmp_path, {"COLABSSH_PUBKEY": "my password"}), "not an SSH public key", cell=cell)


# find_sshd's install road, with an apt-get stand-in written here (a real apt-get must never run in tests)

APT_GET = """#!/bin/sh
PATH=/usr/bin:/bin
echo "$* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> "$(dirname "$0")/apt-get.calls"
if [ "$1" = install ] && [ -n "$INSTALLS_SSHD" ]; then ln -s "$INSTALLS_SSHD" "$(dirname "$0")/sshd"; fi
"""


def _fake_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installs: bool) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    apt = folder / "apt-get"
    apt.write_text(APT_GET)
    apt.chmod(apt.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.setattr(program, "SBIN_DIRS", ())
    if installs:
        monkeypatch.setenv("INSTALLS_SSHD", "/usr/sbin/sshd")
    else:
        monkeypatch.delenv("INSTALLS_SSHD", raising=False)
    return folder


def test_as_root_a_missing_sshd_is_installed_with_apt(tmp_path, monkeypatch):
    folder = _fake_apt(tmp_path, monkeypatch, installs=True)
    said: list[str] = []
    assert program.find_sshd(said.append, is_root=True) == str(folder / "sshd")
    assert (folder / "apt-get.calls").read_text().splitlines() == [
        "update -qq DEBIAN_FRONTEND=noninteractive", "install -y -qq openssh-server DEBIAN_FRONTEND=noninteractive"]
    assert "installing openssh-server" in said[0]


def test_a_failed_apt_install_is_reported(tmp_path, monkeypatch):
    _fake_apt(tmp_path, monkeypatch, installs=False)
    with pytest.raises(BootstrapError) as caught:
        program.find_sshd(lambda line: None, is_root=True)
    assert "apt-get could not install it" in caught.value.message and "network" in caught.value.hint


def test_a_plain_user_is_told_to_install_it(tmp_path, monkeypatch):
    folder = _fake_apt(tmp_path, monkeypatch, installs=True)
    with pytest.raises(BootstrapError) as caught:
        program.find_sshd(lambda line: None, is_root=False)
    assert "sudo apt-get install openssh-server" in caught.value.hint
    assert not os.path.exists(folder / "apt-get.calls")


# failures that are not BootstrapErrors (review item 8) and a state folder that is not ours (item 3)

def test_an_oserror_while_starting_sshd_is_one_line_and_leaves_no_process(start_runtime, tmp_path):
    """A host key path that is a folder: ensure_host_key's unlink raises IsADirectoryError inside sshd.start."""
    state = tmp_path / "runtime" / "state"
    (state / "ssh_host_ed25519_key").mkdir(parents=True)
    running = _fails(start_runtime, {}, "colabssh: error: Is a directory", str(state / "ssh_host_ed25519_key"),
                     "then run the cell again")
    error_lines = [line for line in running.output.splitlines() if "colabssh: error:" in line]
    assert len(error_lines) == 1, running.output
    assert pids_with(str(state / "sshd_config")) == []


def _in_process_options(tmp_path: Path, client_key: str, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, Path]:
    """Run the cell's main() in this process, against the real sshd (COLABSSH_* as the cell runner sets them)."""
    from tests.cellrunner import cell_env

    where = tmp_path / "in-process"
    (where / "drive").mkdir(parents=True)
    for name, value in cell_env(where, {"COLABSSH_SYNC_EVERY": "600"}).items():
        if name.startswith("COLABSSH_"):
            monkeypatch.setenv(name, value)
    return {"tunnel": "local", "public_key": client_key, "sync_every": 0}, where / "state"


def test_a_failure_after_sshd_started_stops_it_and_is_one_line(tmp_path, client_key, monkeypatch, capsys):
    """announce() fails after start(): before, the script ended with a traceback and sshd (its own session) ran on."""
    from colab_bootstrap import runtime
    from colab_bootstrap.sync import periodic

    options, state = _in_process_options(tmp_path, client_key, monkeypatch)
    started: list[int] = []

    def full_disk(*_args: object, **_kwargs: object) -> None:
        started.extend(sshd_listeners(state))
        raise OSError(28, "No space left on device", str(state / "sync"))

    monkeypatch.setattr(periodic, "start_periodic", full_disk)
    assert runtime.main(options) == 1
    out = capsys.readouterr().out
    assert f"colabssh: error: No space left on device ({state / 'sync'})\n  hint: " in out
    assert "Traceback" not in out and "colabssh connect" not in out
    assert len(started) == 1 and not alive(started[0])
    assert pids_with(str(state / "sshd_config")) == []


def test_a_bug_after_sshd_started_keeps_its_traceback_but_stops_sshd(tmp_path, client_key, monkeypatch):
    from colab_bootstrap import runtime
    from colab_bootstrap.sync import periodic

    options, state = _in_process_options(tmp_path, client_key, monkeypatch)

    def bug(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug in colabssh")

    monkeypatch.setattr(periodic, "start_periodic", bug)
    with pytest.raises(RuntimeError, match="a bug in colabssh"):
        runtime.main(options)
    assert pids_with(str(state / "sshd_config")) == []


def _someone_elses_folder(tmp_path: Path) -> Path:
    """As root: a folder of ours given to 'nobody'; otherwise / (root's), which is not ours either."""
    if os.geteuid() != 0:
        return Path("/")
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    os.chown(folder, 65534, 65534)
    return folder


def test_a_state_folder_of_another_user_is_refused_and_keeps_its_mode(start_runtime, tmp_path):
    foreign = _someone_elses_folder(tmp_path)
    before = foreign.stat()
    _fails(start_runtime, {"COLABSSH_STATE": str(foreign)}, f"the state folder {foreign} belongs to another user",
           "COLABSSH_STATE")
    after = foreign.stat()
    assert (stat.S_IMODE(after.st_mode), after.st_uid) == (stat.S_IMODE(before.st_mode), before.st_uid)


def test_a_symlinked_state_folder_is_refused_and_its_target_keeps_its_mode(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    target.chmod(0o755)
    link = tmp_path / "state"
    link.symlink_to(target)
    with pytest.raises(BootstrapError) as caught:
        sshd.prepare_state(link)
    assert "is not a folder colabssh can use (a symlink)" in caught.value.message
    assert "COLABSSH_STATE" in caught.value.hint
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_a_state_path_that_is_a_file_is_refused(start_runtime, tmp_path):
    state = tmp_path / "a-file"
    state.write_text("not a folder\n")
    _fails(start_runtime, {"COLABSSH_STATE": str(state)}, f"cannot make the state folder {state}")
    assert state.read_text() == "not a folder\n"


def test_prepare_state_makes_our_folder_private(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    sshd.prepare_state(state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def test_a_sync_every_that_is_not_a_number_is_refused(start_runtime):
    _fails(start_runtime, {"COLABSSH_SYNC_EVERY": "10m"}, "COLABSSH_SYNC_EVERY='10m' is not a whole number of seconds",
           "600")
