"""`colabssh connect` end to end: the printed cell's real sshd, the real OpenSSH client, paramiko, a temp HOME.

ssh finds ~ through the password database, so every ssh here gets ``-F <temp home>/.ssh/config``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from colab_bootstrap import conncode
from colabssh_cli.app import main
from colabssh_cli.connection.tunnel import TunnelConnector
from colabssh_cli.errors import BAD_INPUT, MISSING_TOOL, UNREACHABLE, ColabsshError
from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import close_shared_connection
from colabssh_cli.session import Session, load_sessions
from colabssh_cli.sshconfig import effective as ssh_g
from tests.cli.connection.test_flow import tree
from tests.cli.sshconfig.test_support import snapshot
from tests.fakes import (
    FAKE_CLOUDFLARED,
    STANDINS,
    new_key,
    ngrok_env,
    path_with_standins,
    wait_until,
)

STANDIN_CODE = STANDINS / "code"


def user_ssh(home: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """OpenSSH through the user's config in the temp HOME, as VS Code would run it."""
    return subprocess.run(["ssh", "-F", str(home / ".ssh" / "config"), "-o", "BatchMode=yes", *args],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)


def stats(home: Path) -> dict[str, tuple[int, int, bytes]]:
    """(inode, mtime_ns, bytes) of every file under ~/.ssh: "changes no file" is checked against this."""
    return {str(p.relative_to(home)): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted((home / ".ssh").rglob("*")) if p.is_file()}


def keygen_fingerprint(public_line: str, tmp: Path) -> str:
    pub = tmp / "hostkey.pub"
    pub.write_text(public_line + "\n")
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


@pytest.fixture(autouse=True)
def close_masters_after(isolated_home: Path) -> Iterator[None]:
    """Close every shared connection a test left open (ControlPersist would keep it 10 minutes)."""
    yield
    paths = Paths.from_env()
    try:
        aliases = set(load_sessions(paths)) | {"colab"}
    except ColabsshError:
        aliases = {"colab"}
    for alias in sorted(aliases):
        close_shared_connection(paths, alias)


@pytest.fixture
def code_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in `code` CLI on PATH (first); returns the file where it records its calls."""
    bin_dir = tmp_path / "editor-bin"
    bin_dir.mkdir()
    for name in ("code", "cursor", "codium"):
        (bin_dir / name).symlink_to(STANDIN_CODE)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "code-calls.jsonl"
    monkeypatch.setenv("FAKE_CODE_LOG", str(log))
    return log


def stop_runtime(running) -> None:
    """Stop a runtime once it serves (a stop while it is still starting is the runtime tests' business)."""
    assert running.wait_for(lambda line: "serving" in line) is not None
    sshd_port = int(re.search(r"sshd: listening on 127\.0\.0\.1:([0-9]+)", running.output).group(1))
    running.stop()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", sshd_port)) != 0, "the stopped runtime's sshd still listens"


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_connect_then_openssh_logs_in_with_the_written_config(runtime, isolated_home, tmp_path, capsys):
    info = runtime.info
    assert main(["connect", runtime.code, "--no-open"]) == 0
    out = capsys.readouterr().out
    # B6: the pinned fingerprint is printed, and it is the one ssh-keygen computes
    assert f"host key {keygen_fingerprint(info.hostkey, tmp_path)} (pinned" in out
    result = user_ssh(isolated_home, "colab", "echo logged-in-as-$(id -un)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"logged-in-as-{info.user}"
    # B1: exactly one pin, the bare HostKeyAlias; ~/.ssh/known_hosts untouched
    known = isolated_home / ".ssh" / "colabssh" / "known_hosts"
    assert known.read_text() == f"colabssh-colab {info.hostkey}\n"
    found = subprocess.run(["ssh-keygen", "-F", "colabssh-colab", "-f", str(known)], capture_output=True, text=True)
    assert found.returncode == 0 and len([ln for ln in found.stdout.splitlines() if ln.startswith("colabssh")]) == 1
    assert not (isolated_home / ".ssh" / "known_hosts").exists()
    # the oracle agrees with what colabssh meant to write
    paths = Paths.from_env()
    entry = TunnelConnector(Session.from_code("colab", runtime.code)).host_entry(paths)
    effective = ssh_g.effective_options(paths, "colab")
    assert ssh_g.mismatches(effective, ssh_g.expected_options(entry)) == []
    # B5: a dead tunnel is noticed (keep-alives through the encrypted channel, a connect timeout)
    assert [effective[k] for k in ("serveraliveinterval", "serveralivecountmax", "connecttimeout")] == [
        ["15"], ["4"], ["20"]]
    session = json.loads(paths.sessions.read_text())["sessions"]["colab"]
    assert (session["host"], session["port"], session["content"]) == (info.host, info.port, info.content)


def test_the_installed_command_never_waits_for_a_terminal(runtime, isolated_home):
    """The real entry point, stdin not a terminal: it finishes on its own (no prompt), and ssh works after."""
    colabssh = Path(sys.executable).with_name("colabssh")
    done = subprocess.run([str(colabssh), "connect", runtime.code, "--no-open"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "SHA256:" in done.stdout and "Traceback" not in done.stderr
    assert user_ssh(isolated_home, "colab", "true").returncode == 0
    close_shared_connection(Paths.from_env(), "colab")


def test_running_the_same_connect_again_changes_no_file(runtime, isolated_home, capsys):
    assert main(["connect", runtime.code, "--no-open"]) == 0
    before = stats(isolated_home)
    assert main(["connect", runtime.code, "--no-open"]) == 0
    assert stats(isolated_home) == before
    assert "no file changed" in capsys.readouterr().err


def test_dry_run_prints_a_diff_that_patch_turns_into_the_real_result(runtime, isolated_home, tmp_path, capsys):
    user_config = isolated_home / ".ssh" / "config"
    user_config.write_bytes(b"Host example\r\n  HostName example.org\r\n# no final newline")
    user_config.chmod(0o600)
    before = tree(isolated_home)
    capsys.readouterr()
    assert main(["connect", runtime.code, "--no-open", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert tree(isolated_home) == before
    assert "nothing was written" in captured.err
    diff = captured.out
    assert "+Include " in diff and "+Host colab" in diff
    copy = tmp_path / "copy"
    shutil.copytree(isolated_home, copy, symlinks=True)
    patched = subprocess.run(["patch", "-p1", "-s"], cwd=copy, input=diff.encode(), capture_output=True)
    assert patched.returncode == 0, patched.stderr
    assert main(["connect", runtime.code, "--no-open"]) == 0
    for name in (".ssh/config", ".ssh/colabssh/config", ".ssh/colabssh/known_hosts"):
        assert (copy / name).read_bytes() == (isolated_home / name).read_bytes(), name


def test_a_code_with_another_host_key_is_refused_before_anything_is_written(runtime, isolated_home, tmp_path,
                                                                            capsys):
    """ngrok hands the same host:port to another runtime: the key in the code is the only proof."""
    other = new_key(tmp_path / "keys", "other_host")
    other_line = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    code = conncode.encode(replace(runtime.info, hostkey=other_line))
    before = tree(isolated_home)
    assert main(["connect", code, "--no-open"]) == UNREACHABLE
    err = capsys.readouterr().err
    got, want = runtime.info.fingerprint, conncode.fingerprint(other_line)
    assert f"presented host key {got}, not the code's {want}" in err
    assert "Traceback" not in err
    assert tree(isolated_home) == before


def test_a_dead_tunnel_exits_3_and_writes_nothing(runtime, isolated_home, capsys):
    stop_runtime(runtime)
    before = tree(isolated_home)
    assert main(["connect", runtime.code, "--no-open"]) == UNREACHABLE
    err = capsys.readouterr().err
    assert "did not answer" in err and "run the cell in Colab again" in err
    assert tree(isolated_home) == before


def test_a_runtime_made_for_another_key_refuses_ours(start_runtime, render, isolated_home, tmp_path, capsys):
    other = new_key(tmp_path / "keys", "someone_else")
    cell = tmp_path / "cell-other.py"
    assert main(["bootstrap", "--tunnel", "local", "--public-key", str(other.with_suffix(".pub")),
                 "--out", str(cell)]) == 0
    running = start_runtime(cell=cell)
    before = tree(isolated_home)
    assert main(["connect", running.code, "--no-open"]) == UNREACHABLE
    err = capsys.readouterr().err
    assert "refused colabssh's key" in err and "colabssh bootstrap" in err
    assert tree(isolated_home) == before


def test_no_check_writes_the_config_for_later(runtime, isolated_home, capsys):
    stop_runtime(runtime)
    assert main(["connect", runtime.code, "--no-open", "--no-check"]) == 0
    assert "Host colab" in (isolated_home / ".ssh" / "colabssh" / "config").read_text()
    assert "works" not in capsys.readouterr().out  # no login was claimed


def test_a_new_code_for_the_alias_closes_the_shared_connection_to_the_old_runtime(start_runtime, isolated_home,
                                                                                 tmp_path):
    first = start_runtime("local", where=tmp_path / "first")
    second = start_runtime("local", where=tmp_path / "second")
    assert main(["connect", first.code, "--no-open"]) == 0
    paths = Paths.from_env()
    old_config = tmp_path / "old-config"
    shutil.copy(paths.user_config, old_config)  # its Include names colabssh's file, rewritten below
    old_own = tmp_path / "old-own"
    shutil.copy(paths.config, old_own)
    old_config.write_text(old_config.read_text().replace(str(paths.config), str(old_own)))
    check = ["ssh", "-F", str(old_config), "-O", "check", "colab"]
    assert subprocess.run(check, capture_output=True, text=True).returncode == 0  # `ssh colab true` left a master
    assert main(["connect", second.code, "--no-open"]) == 0
    gone = subprocess.run(check, capture_output=True, text=True)
    assert gone.returncode == 255 and "No such file" in gone.stderr
    result = user_ssh(isolated_home, "colab", "echo $COLABSSH_STATE")
    assert result.stdout.strip() == str(second.state)
    assert paths.known_hosts.read_text() == f"colabssh-colab {second.info.hostkey}\n"  # B2
    close_shared_connection(paths, "colab")


def test_forget_is_the_exact_inverse(runtime, isolated_home, capsys):
    user_config = isolated_home / ".ssh" / "config"
    original = b"# mine\r\nHost *\r\n  ServerAliveInterval 30\r\n# \xff\xfe odd bytes, no final newline"
    user_config.parent.mkdir(mode=0o700, exist_ok=True)
    user_config.write_bytes(original)
    user_config.chmod(0o600)
    assert main(["connect", runtime.code, "--no-open"]) == 0
    paths = Paths.from_env()
    assert user_ssh(isolated_home, "-O", "check", "colab").returncode == 0
    assert main(["forget", "colab"]) == 0
    assert user_config.read_bytes() == original
    assert not paths.config.exists() and not paths.known_hosts.exists() and not paths.sessions.exists()
    assert "forgot colab" in capsys.readouterr().out
    # the shared connection went first: nothing reaches the runtime through a leftover master
    control = [p for p in paths.control_dir.iterdir()] if paths.control_dir.exists() else []
    assert control == []
    assert main(["forget", "colab"]) == BAD_INPUT


def test_the_editor_gets_the_exact_folder_uri(runtime, code_cli, capsys):
    assert main(["connect", runtime.code]) == 0
    argvs = [call["argv"] for call in calls(code_cli)]
    assert argvs == [["--list-extensions"], ["--folder-uri", f"vscode-remote://ssh-remote+colab{runtime.info.content}"]]
    assert "answer Linux" in capsys.readouterr().out


def test_an_alias_the_user_already_has_is_refused(runtime, isolated_home, capsys):
    user_config = isolated_home / ".ssh" / "config"
    user_config.write_bytes(b"Host github.com\n  User git\n\nHost foo colab\n  HostName mine.example\n")
    user_config.chmod(0o600)
    before = tree(isolated_home)
    assert main(["connect", runtime.code, "--no-open"]) == BAD_INPUT
    err = capsys.readouterr().err
    assert "line 4" in err and "--name" in err
    assert tree(isolated_home) == before
    assert main(["connect", runtime.code, "--no-open", "--name", "gpu"]) == 0
    assert user_ssh(isolated_home, "gpu", "true").returncode == 0


def test_when_openssh_fails_where_paramiko_succeeds_nothing_is_written(runtime, isolated_home, capsys):
    """A user-wide setting that breaks OpenSSH's login (not paramiko's): the one login, through copies of the planned
    files, fails before a byte is written, and paramiko tells that the runtime itself is fine."""
    user_config = isolated_home / ".ssh" / "config"
    original = b"Host *\n  HostKeyAlgorithms ssh-rsa\n"
    user_config.write_bytes(original)
    user_config.chmod(0o600)
    before = tree(isolated_home)
    assert main(["connect", runtime.code, "--no-open"]) == UNREACHABLE
    err = capsys.readouterr().err
    assert "OpenSSH could not log in where colabssh's own check could" in err and "colabssh changed nothing" in err
    assert "colabssh-tmp" not in err and "preview" not in err  # ssh's words name the real files, not the copies
    assert tree(isolated_home) == before
    paths = Paths.from_env()
    assert not paths.config.exists() and not paths.known_hosts.exists() and not paths.sessions.exists()


def logins(runtime) -> int:
    return (runtime.state / "sshd.log").read_text(errors="replace").count("Accepted publickey")


def test_when_the_login_after_writing_fails_the_files_go_back(runtime, isolated_home, capsys, monkeypatch):
    """The check passed, the files were written, then OpenSSH's login through the written files fails: every byte
    goes back, and the shared connection the check opened is closed."""
    from colabssh_cli.connection import commit, tunnel
    from colabssh_cli.remote import process

    real_login = commit.openssh_login

    def broken(paths, alias, config=None, options=()):  # the login after writing only: the check's is tunnel's
        return real_login(paths, alias, config, [*options, "-o", "ControlPath=none", "-o", "HostKeyAlgorithms=ssh-rsa"])

    monkeypatch.setattr(commit, "openssh_login", broken)
    monkeypatch.setattr(tunnel, "control_command",  # the written files miss the shared connection: a login is tried
                        lambda paths, alias, command, *a, **k: process.Finished([], 255, "", "no master\n"))
    user_config = isolated_home / ".ssh" / "config"
    original = b"# mine\n"
    user_config.write_bytes(original)
    user_config.chmod(0o600)
    paths = Paths.from_env()
    assert main(["connect", runtime.code, "--no-open"]) == UNREACHABLE
    err = capsys.readouterr().err
    assert "OpenSSH could not log in" in err and "put its files back" in err
    assert user_config.read_bytes() == original
    assert not paths.config.exists() and not paths.known_hosts.exists() and not paths.sessions.exists()
    assert logins(runtime) == 1  # the check's login, then its shared connection was asked
    log = runtime.state / "sshd.log"  # sshd notes the master's exit a moment after `ssh -O exit` returns
    wait_until(lambda: log.read_text(errors="replace").count("Disconnected from user") == 1,
               what="the check's shared connection to close")


def test_an_overridden_option_is_refused_before_anything_is_written(runtime, isolated_home, capsys):
    """`ssh -G` on the planned files is the oracle: a setting of the user's above colabssh's block (where the user
    may move lines) that wins for the alias is found before a byte is written: no backup, the same inode."""
    assert main(["connect", runtime.code, "--no-open", "--name", "other"]) == 0
    paths = Paths.from_env()
    close_shared_connection(paths, "other")
    paths.user_config.write_bytes(b"User alice\n" + paths.user_config.read_bytes())
    saved = {p: p.read_bytes() for p in (paths.config, paths.known_hosts, paths.sessions)}
    before = snapshot(paths.user_config)
    assert main(["connect", runtime.code, "--no-open"]) == BAD_INPUT
    err = capsys.readouterr().err
    assert "user: ssh uses alice, colabssh wrote root" in err and "colabssh changed nothing" in err
    assert snapshot(paths.user_config) == before
    assert {p: p.read_bytes() for p in saved} == saved
    assert [p for p in paths.ssh_dir.iterdir() if "colabssh-bak" in p.name] == []  # none: the file was new
    assert [p for p in paths.home.rglob("*") if "colabssh-tmp" in p.name] == []


def test_connect_through_the_ngrok_stand_in(start_runtime, isolated_home, tmp_path):
    running = start_runtime("ngrok", extra_env=ngrok_env(tmp_path))
    assert running.info.tunnel == "ngrok"
    assert main(["connect", running.code, "--no-open"]) == 0
    result = user_ssh(isolated_home, "colab", "echo through-ngrok")
    assert result.stdout.strip() == "through-ngrok", result.stderr
    close_shared_connection(Paths.from_env(), "colab")


@pytest.fixture
def cloudflared_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    registry = tmp_path / "cloudflared-registry"
    registry.mkdir()
    bin_dir = tmp_path / "cloudflared-bin"
    bin_dir.mkdir()
    (bin_dir / "cloudflared").symlink_to(FAKE_CLOUDFLARED)
    monkeypatch.setenv("FAKE_CLOUDFLARED_DIR", str(registry))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return {"FAKE_CLOUDFLARED_DIR": str(registry), "PATH": path_with_standins(bin_dir)}


def test_connect_through_the_cloudflared_stand_in(start_runtime, isolated_home, tmp_path, cloudflared_env):
    running = start_runtime("cloudflared", extra_env=cloudflared_env)
    assert running.info.tunnel == "cloudflared"
    assert main(["connect", running.code, "--no-open"]) == 0
    own = (isolated_home / ".ssh" / "colabssh" / "config").read_text()
    exe = str(tmp_path / "cloudflared-bin" / "cloudflared")
    assert f'  ProxyCommand "{exe}" access ssh --hostname %h\n' in own
    result = user_ssh(isolated_home, "colab", "echo through-cloudflared")
    assert result.stdout.strip() == "through-cloudflared", result.stderr
    close_shared_connection(Paths.from_env(), "colab")


def test_cloudflared_missing_here_is_exit_4(start_runtime, isolated_home, tmp_path, cloudflared_env, monkeypatch,
                                            capsys):
    running = start_runtime("cloudflared", extra_env=cloudflared_env)
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                               if not (Path(p) / "cloudflared").exists()))
    before = tree(isolated_home)
    assert main(["connect", running.code, "--no-open"]) == MISSING_TOOL
    assert re.search(r"`cloudflared` is not installed", capsys.readouterr().err)
    assert tree(isolated_home) == before
    stop_runtime(running)
