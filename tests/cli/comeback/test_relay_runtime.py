"""The relay against real local runtimes: `connect CODE --drive-folder` writes a Host block whose ProxyCommand is
the relay; ssh reaches the runtime with fd passing (OpenSSH) and with the pump (ProxyUseFdpass no, as VSCodium's
Open Remote-SSH runs it); after a recycle (runtime A stopped, runtime B with the same host key elsewhere, its code
on Drive) `ssh colab` reaches B with no laptop command; an address that presents another key is refused by ssh."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from colab_bootstrap import conncode, drive_layout
from colab_bootstrap.tunnels.ngrok import metadata_for
from colabssh_cli.app import main
from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import close_shared_connection
from tests.cli.comeback.conftest import API_KEY, start_ngrok_api
from tests.cli.connection.test_flow_e2e import (  # noqa: F401  (fixtures)
    close_masters_after,
    cloudflared_env,
    user_ssh,
)
from tests.fakes import ngrok_env


def put_code(drive: Path, code: str, mtime: float | None = None) -> Path:
    """The code where the cell leaves it on Drive for this laptop's key."""
    public = Paths.from_env().public_key.read_text()
    path = drive_layout.runtime_folder(drive, public) / drive_layout.CODE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(code + "\n")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def no_master(alias: str = "colab") -> list[str]:
    """Options for a connection of its own (not a ride on the shared one), so the relay runs each time."""
    return ["-o", "ControlMaster=no", "-o", "ControlPath=none"]


def test_connect_with_a_drive_folder_reaches_the_runtime_by_fd_passing_and_by_the_pump(
        runtime, isolated_home, tmp_path, close_masters_after):  # noqa: F811
    drive = tmp_path / "My Drive"
    drive.mkdir()
    assert main(["connect", runtime.code, "--no-open", "--drive-folder", str(drive)]) == 0
    config = (isolated_home / ".ssh" / "colabssh" / "config").read_text()
    assert "-m colabssh_cli.comeback.relay colab %h %p local" in config
    assert "ProxyUseFdpass yes" in config
    passed = user_ssh(isolated_home, *no_master(), "colab", "echo fd")
    assert (passed.returncode, passed.stdout) == (0, "fd\n"), passed.stderr
    pumped = user_ssh(isolated_home, *no_master(), "-o", "ProxyUseFdpass=no", "colab", "echo pump")
    assert (pumped.returncode, pumped.stdout) == (0, "pump\n"), pumped.stderr


def test_after_a_recycle_ssh_reaches_the_new_runtime_through_its_code_on_drive(
        start_runtime, isolated_home, tmp_path, close_masters_after):  # noqa: F811
    drive = tmp_path / "My Drive"
    drive.mkdir()
    state = tmp_path / "a" / "state"
    first = start_runtime("local", where=tmp_path / "a")
    assert main(["connect", first.code, "--no-open", "--drive-folder", str(drive)]) == 0
    close_shared_connection(Paths.from_env(), "colab")
    first.stop()
    assert user_ssh(isolated_home, *no_master(), "colab", "true").returncode == 255
    # runtime B: the same host key (the cell keeps it on Drive; here: the same state folder), another port
    second = start_runtime("local", where=tmp_path / "b",  # Colab's content root is /content on every runtime
                           extra_env={"COLABSSH_STATE": str(state), "COLABSSH_PORT": str(free_port()),
                                      "COLABSSH_CONTENT": str(first.content)})
    assert second.info.hostkey == first.info.hostkey and second.info.port != first.info.port
    put_code(drive, second.code)
    for options in ([], ["-o", "ProxyUseFdpass=no"]):
        done = user_ssh(isolated_home, *no_master(), *options, "colab", "echo $COLABSSH_CONTENT")
        assert (done.returncode, done.stdout.strip()) == (0, str(second.content)), done.stderr
        assert f"{second.info.host}:{second.info.port}" in done.stderr  # the relay says where it went
    (second.content / "notes.txt").write_text("from B\n")
    assert main(["pull", "notes.txt", str(tmp_path / "pulled")]) == 0  # colabssh's commands ride the same road
    assert (tmp_path / "pulled" / "notes.txt").read_text() == "from B\n"


def test_an_address_that_presents_another_host_key_is_refused_by_ssh(
        start_runtime, isolated_home, tmp_path, close_masters_after):  # noqa: F811
    drive = tmp_path / "My Drive"
    drive.mkdir()
    first = start_runtime("local", where=tmp_path / "a")
    other = start_runtime("local", where=tmp_path / "b")
    assert main(["connect", first.code, "--no-open", "--drive-folder", str(drive)]) == 0
    close_shared_connection(Paths.from_env(), "colab")
    first.stop()
    # a code on Drive that claims the pinned key but points at another runtime (another key)
    forged = conncode.encode(conncode.ConnectionInfo(**{**first.info.__dict__, "port": other.info.port}))
    put_code(drive, forged)
    done = user_ssh(isolated_home, *no_master(), "colab", "true")
    assert done.returncode == 255
    assert f"127.0.0.1:{other.info.port}" in done.stderr  # the relay says where it went ...
    assert "host key" in done.stderr.lower() and "colabssh-colab" in done.stderr, done.stderr  # ssh refused it


def test_with_ngrok_and_an_api_key_ssh_finds_the_recycled_runtime_through_the_api(
        start_runtime, isolated_home, tmp_path, monkeypatch, close_masters_after):  # noqa: F811
    cloud = tmp_path / "ngrok-cloud.json"
    api, url = start_ngrok_api(cloud)
    try:
        state = tmp_path / "a" / "state"
        first = start_runtime("ngrok", ngrok_env(tmp_path / "a", FAKE_NGROK_CLOUD=str(cloud)), where=tmp_path / "a")
        tags = [e["metadata"] for e in json.loads(cloud.read_text())["endpoints"].values()]
        assert tags == [metadata_for(first.info.hostkey)]  # the cell tagged its tunnel with the host key
        monkeypatch.setenv("NGROK_API_KEY", API_KEY)
        monkeypatch.setenv("COLABSSH_NGROK_API_URL", url)
        assert main(["connect", first.code, "--no-open"]) == 0
        assert "comeback.relay colab %h %p ngrok" in (isolated_home / ".ssh" / "colabssh" / "config").read_text()
        close_shared_connection(Paths.from_env(), "colab")
        first.stop()
        assert json.loads(cloud.read_text())["endpoints"] == {}  # the agent's session ended
        again = ngrok_env(tmp_path / "b", FAKE_NGROK_CLOUD=str(cloud), COLABSSH_STATE=str(state),
                          COLABSSH_PORT=str(free_port()))
        second = start_runtime("ngrok", again, where=tmp_path / "b")
        assert second.info.hostkey == first.info.hostkey and second.info.port != first.info.port
        done = user_ssh(isolated_home, *no_master(), "colab", "echo $COLABSSH_CONTENT")
        assert (done.returncode, done.stdout.strip()) == (0, str(second.content)), done.stderr
        assert f"{second.info.port} now (the ngrok API)" in done.stderr
    finally:
        api.terminate()
        api.wait()


def test_a_recycled_cloudflared_runtime_is_reached_through_cloudflared_at_its_new_name(
        start_runtime, isolated_home, tmp_path, cloudflared_env, close_masters_after):  # noqa: F811
    drive = tmp_path / "My Drive"
    drive.mkdir()
    state = tmp_path / "a" / "state"
    first = start_runtime("cloudflared", extra_env=cloudflared_env, where=tmp_path / "a")
    assert main(["connect", first.code, "--no-open", "--drive-folder", str(drive)]) == 0
    close_shared_connection(Paths.from_env(), "colab")
    first.stop()
    again = {**cloudflared_env, "COLABSSH_STATE": str(state), "COLABSSH_PORT": str(free_port())}
    second = start_runtime("cloudflared", extra_env=again, where=tmp_path / "b")
    assert second.info.hostkey == first.info.hostkey and second.info.host != first.info.host
    put_code(drive, second.code)
    for options in ([], ["-o", "ProxyUseFdpass=no"]):  # cloudflared detached on a socketpair / exec'd
        done = user_ssh(isolated_home, *no_master(), *options, "colab", "echo $COLABSSH_CONTENT")
        assert (done.returncode, done.stdout.strip()) == (0, str(second.content)), done.stderr
        assert f"'colab' is at {second.info.host} now" in done.stderr
