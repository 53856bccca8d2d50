"""`colabssh connect CODE --drive-folder PATH|auto|none`: what it records, says and refuses, and the Host block it
writes (the relay as ProxyCommand, with ProxyUseFdpass)."""

from __future__ import annotations

import json
from pathlib import Path

from colabssh_cli.app import main
from colabssh_cli.errors import BAD_INPUT
from colabssh_cli.paths import Paths
from colabssh_cli.session import load_sessions
from colabssh_cli.sshconfig.render import HostEntry, render_host_entry
from tests.cli.comeback.conftest import code_for, dead_port, host_key

CODE = code_for(dead_port(), host_key(1))


def own_config(home: Path) -> str:
    return (home / ".ssh" / "colabssh" / "config").read_text()


def connect(*args: str) -> int:
    return main(["connect", CODE, "--no-open", "--no-check", *args])


def test_the_host_block_gets_the_relay_and_the_session_its_folder(isolated_home, tmp_path, capsys):
    drive = tmp_path / "My Drive"
    drive.mkdir()
    assert connect("--drive-folder", str(drive)) == 0
    block = own_config(isolated_home)
    assert " -m colabssh_cli.comeback.relay colab %h %p local\n  ProxyUseFdpass yes\n" in block
    assert load_sessions(Paths.from_env())["colab"].drive_folder == str(drive)
    out = capsys.readouterr().out
    assert f"Drive folder: {drive}; no colabssh folder under it yet" in out
    assert "ssh colab finds a recycled runtime by itself" in out


def test_a_reconnect_keeps_the_folder_and_none_drops_it(isolated_home, tmp_path, capsys):
    drive = tmp_path / "My Drive"
    drive.mkdir()
    assert connect("--drive-folder", str(drive)) == 0
    sessions = Paths.from_env().sessions
    before = sessions.read_bytes()
    assert connect() == 0
    assert sessions.read_bytes() == before and "(kept from the earlier connect)" in capsys.readouterr().out
    assert connect("--drive-folder", "none") == 0
    assert json.loads(sessions.read_text())["sessions"]["colab"]["drive_folder"] == ""
    assert "ProxyCommand" not in own_config(isolated_home) and "ProxyUseFdpass" not in own_config(isolated_home)


def test_auto_takes_the_detected_folder(isolated_home, capsys):
    drive = isolated_home / "gdrive"  # rclone's usual mount point on Linux
    drive.mkdir()
    assert connect("--drive-folder", "auto") == 0
    assert load_sessions(Paths.from_env())["colab"].drive_folder == str(drive)


def test_a_plain_connect_mentions_a_detected_folder_once(isolated_home, capsys):
    drive = isolated_home / "Google Drive"
    drive.mkdir()
    assert connect() == 0
    out = capsys.readouterr().out
    assert out.count(f"Google Drive for desktop found at {drive}: add --drive-folder") == 1
    assert "ProxyCommand" not in own_config(isolated_home)


def test_a_missing_folder_is_one_line_and_writes_nothing(isolated_home, tmp_path, capsys):
    assert connect("--drive-folder", str(tmp_path / "nowhere")) == BAD_INPUT
    err = capsys.readouterr().err
    assert f"--drive-folder {tmp_path / 'nowhere'}: no such folder" in err and "hint:" in err
    assert "Traceback" not in err and not (isolated_home / ".ssh" / "colabssh" / "config").exists()


def test_auto_without_drive_for_desktop_says_so(isolated_home, capsys):
    assert connect("--drive-folder", "auto") == BAD_INPUT
    assert "no Google Drive for desktop folder found" in capsys.readouterr().err


def test_the_option_needs_a_code(isolated_home, tmp_path, capsys):
    folder = str(tmp_path)
    assert main(["connect", "--host", "0.tcp.ngrok.io", "--port", "12345", "--password", "--no-open", "--no-check",
                 "--drive-folder", folder]) == BAD_INPUT
    assert "--drive-folder needs a connection code" in capsys.readouterr().err
    assert main(["connect", "--via", "colab-cli", "--drive-folder", folder, "--no-open"]) == BAD_INPUT
    assert "--drive-folder cannot be combined with --via colab-cli" in capsys.readouterr().err


def test_fd_passing_is_written_only_with_a_proxy_command(tmp_path):
    entry = HostEntry(alias="colab", hostname="127.0.0.1", port=22, user="root", identity_file=tmp_path / "k",
                      known_hosts=tmp_path / "kh", host_key_alias="colabssh-colab", strict_host_key_checking="yes",
                      fd_passing=True)
    assert "ProxyUseFdpass" not in render_host_entry(entry)
    with_proxy = render_host_entry(HostEntry(**{**entry.__dict__, "proxy_command": "relay %h %p"}))
    assert "  ProxyCommand relay %h %p\n  ProxyUseFdpass yes\n" in with_proxy
