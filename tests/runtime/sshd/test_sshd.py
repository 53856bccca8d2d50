"""The sshd the printed cell starts: key only, one authorised key, loopback only (real OpenSSH sshd)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

from tests.fakes import client_key_path, new_key, ssh, sshd_listeners


def test_the_authorised_key_logs_in_and_the_code_pins_the_real_host_key(runtime, isolated_home, tmp_path):
    result = ssh(runtime.info, client_key_path(isolated_home), "echo logged-in-as-$(id -un)", pin=tmp_path / "pin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"logged-in-as-{runtime.info.user}"
    assert runtime.info.tunnel == "local" and runtime.info.host == "127.0.0.1"
    # the one authorised key, and nothing else
    authorized = (runtime.state / "authorized_keys").read_text().splitlines()
    public = (client_key_path(isolated_home).with_suffix(".pub")).read_text().split()
    assert [line.split()[:2] for line in authorized] == [public[:2]]


def test_a_changed_host_key_is_refused_by_the_pinned_client(runtime, isolated_home, tmp_path):
    other = new_key(tmp_path / "keys", "impostor").with_suffix(".pub").read_text().split()
    info = dataclasses.replace(runtime.info, hostkey=f"{other[0]} {other[1]}")
    result = ssh(info, client_key_path(isolated_home), "true", pin=tmp_path / "pin")
    assert result.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr or "Host key verification failed" in result.stderr


def test_password_login_is_not_even_offered(runtime, isolated_home):
    result = ssh(runtime.info, client_key_path(isolated_home), "true", "-o", "PreferredAuthentications=password",
                 "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1")
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr, result.stderr


def test_keyboard_interactive_login_is_refused(runtime, isolated_home):
    result = ssh(runtime.info, client_key_path(isolated_home), "true",
                 "-o", "PreferredAuthentications=keyboard-interactive", "-o", "PubkeyAuthentication=no")
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr, result.stderr


def test_another_key_is_refused(runtime, tmp_path):
    other = new_key(tmp_path / "keys")
    result = ssh(runtime.info, other, "true")
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr, result.stderr


def _listening_addresses(port: int) -> list[str]:
    """Local addresses in LISTEN state for ``port``, from /proc/net/tcp and tcp6."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A: TCP_LISTEN
                found.append(address)
    return found


def _other_addresses() -> list[str]:
    """This machine's addresses other than 127.0.0.1: 127.0.0.2 always, and its non-loopback ones."""
    addresses = ["127.0.0.2"]
    result = subprocess.run(["hostname", "-I"], capture_output=True, text=True)
    addresses += [a for a in result.stdout.split() if a not in ("127.0.0.1", "::1")]
    return addresses


def test_sshd_listens_on_127_0_0_1_only(runtime):
    port = runtime.info.port
    assert _listening_addresses(port) == ["0100007F"]  # 127.0.0.1, little-endian hex; no IPv6, no 0.0.0.0
    for address in _other_addresses():
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            assert sock.connect_ex((address, port)) != 0, f"sshd answered on {address}:{port}"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        assert sock.recv(64).startswith(b"SSH-2.0-OpenSSH")


def test_the_effective_config_is_key_only(runtime):
    config = runtime.state / "sshd_config"
    sshd = shutil.which("sshd", path=os.environ["PATH"] + ":/usr/sbin:/usr/local/sbin")
    assert sshd
    result = subprocess.run([sshd, "-T", "-f", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    effective = set(result.stdout.splitlines())
    for line in ("passwordauthentication no", "kbdinteractiveauthentication no", "permitemptypasswords no",
                 "pubkeyauthentication yes", "authenticationmethods publickey", "hostbasedauthentication no",
                 "permituserenvironment no", "x11forwarding no", "allowagentforwarding no",
                 # behind a public tunnel (issue 10)
                 "maxauthtries 3", "logingracetime 30", "maxstartups 10:30:60", "allowtcpforwarding local",
                 "allowstreamlocalforwarding local", "gatewayports no", "permittunnel no",
                 f"listenaddress 127.0.0.1:{runtime.info.port}",
                 f"authorizedkeysfile {runtime.state / 'authorized_keys'}"):
        assert line in effective, line
    assert ("permitrootlogin without-password" in effective or "permitrootlogin prohibit-password" in effective)
    assert [line for line in effective if line.startswith("listenaddress")] == [
        f"listenaddress 127.0.0.1:{runtime.info.port}"]


def test_state_folder_and_secrets_are_private(runtime):
    assert runtime.state.stat().st_mode & 0o777 == 0o700
    for name in ("ssh_host_ed25519_key", "authorized_keys", "sshd_config", "session-env.sh"):
        assert (runtime.state / name).stat().st_mode & 0o077 == 0, name
    assert (runtime.state / "sshd.pid").read_text().strip() == str(_sshd_pid(runtime.state))


def _sshd_pid(state: Path) -> int:
    pids = sshd_listeners(state)
    assert len(pids) == 1, pids
    return pids[0]


def test_allowusers_and_the_code_name_the_real_user_not_the_environment_s(start_runtime, isolated_home):
    """$USER/$LOGNAME are whatever the environment says; the user comes from the password database."""
    import pwd

    me = pwd.getpwuid(os.geteuid()).pw_name
    running = start_runtime("local", {"USER": "someone-else", "LOGNAME": "someone-else"})
    assert running.info.user == me
    allow = [line for line in (running.state / "sshd_config").read_text().splitlines() if line.startswith("AllowUsers")]
    assert allow == [f"AllowUsers {me}"]
    result = ssh(running.info, client_key_path(isolated_home), "id -un")
    assert result.returncode == 0 and result.stdout.strip() == me, result.stderr


# private files (review item 4): a leftover temp of an earlier run must not lend its mode to the new file

def _private_writers(state: Path) -> list[tuple[str, object]]:
    from colab_bootstrap import session_env, sshd
    from colab_bootstrap.tunnels import ngrok as tunnel_ngrok

    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnaOCFdCwAxPerC7oYBQAlHTu05NJc9IsxS2Bt6N4Q1"
    return [
        ("ngrok.yml", lambda: tunnel_ngrok.write_agent_config(state, "2fAkEtOkEn0123456789_abcdef")),
        ("authorized_keys", lambda: sshd.write_authorized_key(state, key)),
        ("session-env.sh", lambda: session_env.write_env_file({"CUDA_HOME": "/usr/local/cuda"},
                                                              state / "session-env.sh")),
    ]


def test_a_leftover_temp_at_0644_does_not_leak_its_mode(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    old_umask = os.umask(0)  # the mode must not depend on the umask either
    try:
        for name, write in _private_writers(state):
            leftover = state / f".{name}.tmp"  # the fixed temp name the writers used to open with O_CREAT
            leftover.write_text("stale\n")
            leftover.chmod(0o644)
            (state / name).write_text("old\n")
            (state / name).chmod(0o644)
            write()
            assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
            assert (state / name).read_text() not in ("old\n", "stale\n"), name
    finally:
        os.umask(old_umask)
    names = sorted(path.name for path in state.iterdir())
    assert names == sorted([".ngrok.yml.tmp", ".authorized_keys.tmp", ".session-env.sh.tmp",
                            "ngrok.yml", "authorized_keys", "session-env.sh"])  # no new temp left behind


def test_a_failed_private_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    import pytest

    from colab_bootstrap.files import write_private

    folder = tmp_path / "state"
    folder.mkdir()
    target = folder / "ngrok.yml"
    target.write_text("old\n")
    with pytest.raises(UnicodeEncodeError):
        write_private(target, "token: \udcff\n")  # a lone surrogate cannot be written as UTF-8
    assert target.read_text() == "old\n"
    assert [path.name for path in folder.iterdir()] == ["ngrok.yml"]


def test_per_source_penalties_are_written_only_where_sshd_knows_them_and_never_lock_the_owner_out():
    """Every tunnel client is 127.0.0.1: only a crash (what only an exploit causes) is penalised, on the
    releases whose penalty classes are known; 9.8/9.9 charge LoginGraceTime at the crash rate, so: off."""
    from colab_bootstrap.sshd.config import per_source_penalties_lines, render_config

    assert per_source_penalties_lines(None) == [] and per_source_penalties_lines((9, 2)) == []  # unknown keyword
    assert per_source_penalties_lines((9, 8)) == per_source_penalties_lines((9, 9)) == ["PerSourcePenalties no"]
    assert per_source_penalties_lines((10, 0)) == [
        "PerSourcePenalties crash:90s authfail:0s noauth:0s grace-exceeded:0s"]
    assert per_source_penalties_lines((10, 3)) == [
        "PerSourcePenalties crash:90s authfail:0s noauth:0s grace-exceeded:0s invaliduser:0s"]
    assert per_source_penalties_lines((10, 6)) == per_source_penalties_lines((11, 0)) == ["PerSourcePenalties no"]
    config = render_config(Path("/state"), 2222, "root", {}, (10, 5), Path("/etc/profile.d/colabssh-env.sh"))
    assert "PerSourcePenalties crash:90s" in config and "PerSourcePenaltyExemptList" not in config
    assert "# login-shell snippet: /etc/profile.d/colabssh-env.sh\n" in config
    assert "PerSourcePenalties" not in render_config(Path("/state"), 2222, "root", {}, (9, 2))
