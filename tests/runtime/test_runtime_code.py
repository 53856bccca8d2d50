"""The runtime side of the connection code: only what a runtime emits decodes (review item 2)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from colab_bootstrap import conncode
from colab_bootstrap.settings import RUNTIME_TUNNELS
from colabssh_cli.app import main
from colabssh_cli.errors import BAD_INPUT

HOST_KEY = "ssh-ed25519 " + base64.b64encode(
    b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))).decode()
INFO = conncode.ConnectionInfo(host="0.tcp.ngrok.io", port=12345, user="root", hostkey=HOST_KEY, tunnel="ngrok",
                               content="/content", drive="/content/drive/MyDrive", python="/usr/bin/python3")


def forged(tunnel: str) -> str:
    """A well-formed, correctly checksummed code that claims ``tunnel`` (made by hand: encode() refuses it)."""
    raw = json.dumps({"v": 1, **asdict(INFO), "tunnel": tunnel}, separators=(",", ":"), sort_keys=True)
    payload = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    return f"colabssh1:{payload}.{hashlib.sha256(payload.encode()).hexdigest()[:8]}"


@pytest.mark.parametrize("tunnel", RUNTIME_TUNNELS)
def test_the_tunnels_a_runtime_emits_decode(tunnel):
    assert conncode.decode(forged(tunnel)) == replace(INFO, tunnel=tunnel)
    assert conncode.decode(conncode.encode(replace(INFO, tunnel=tunnel))).tunnel == tunnel


def test_a_code_claiming_the_colab_cli_road_is_refused():
    """`--via colab-cli` changes how the laptop treats a session (shared forwards, no sync); no code may claim it."""
    with pytest.raises(conncode.CodeError, match="unknown tunnel kind 'colab-cli'"):
        conncode.decode(forged("colab-cli"))
    with pytest.raises(conncode.CodeError, match="unknown tunnel kind 'colab-cli'"):
        conncode.encode(replace(INFO, tunnel="colab-cli"))


def test_colabssh_connect_refuses_it_and_writes_nothing(isolated_home: Path, capsys):
    before = sorted(str(path) for path in isolated_home.rglob("*"))
    assert main(["connect", "--no-open", "--", forged("colab-cli")]) == BAD_INPUT
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.startswith("colabssh: error: bad connection code: unknown tunnel kind 'colab-cli'")
    assert sorted(str(path) for path in isolated_home.rglob("*")) == before
