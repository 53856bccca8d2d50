"""The ngrok API as a second way (laptop NGROK_API_KEY): the newest TCP address tagged with the pinned host key's
fingerprint, against the API stand-in (tests/standins/ngrok-api: the real list schema, the real 401)."""

from __future__ import annotations

import json
import time

from colab_bootstrap.conncode import fingerprint
from colab_bootstrap.tunnels import ngrok as cell_ngrok
from colabssh_cli.comeback import ngrok_api
from tests.cli.comeback.conftest import (
    API_KEY,
    Speaker,
    dead_port,
    host_key,
    record,
    relay,
    start_ngrok_api,
)

PINNED, OTHER = host_key(1), host_key(2)


def tunnel(port: int, key: str, created: str) -> dict:
    """One endpoint as the stand-in agent records it (tests/standins/ngrok, FAKE_NGROK_CLOUD)."""
    return {"id": f"ep_{port}", "public_url": f"tcp://127.0.0.1:{port}", "proto": "tcp", "type": "ephemeral",
            "metadata": cell_ngrok.metadata_for(key), "created_at": created}


def test_the_cell_and_the_laptop_name_the_same_tag():
    assert cell_ngrok.METADATA_PREFIX == ngrok_api.METADATA_PREFIX
    assert cell_ngrok.metadata_for(PINNED) == ngrok_api.METADATA_PREFIX + fingerprint(PINNED)


def test_the_newest_tunnel_tagged_with_the_pinned_key_is_taken(client_key, tmp_path, speakers, ngrok_api):
    cloud, url = ngrok_api
    last, older, newest, stranger = Speaker("last"), Speaker("older"), Speaker("newest"), Speaker("stranger")
    speakers += [last, older, newest, stranger]
    cloud.write_text(json.dumps({"endpoints": {
        "a": tunnel(older.port, PINNED, "2026-12-01T11:00:00Z"),
        "b": tunnel(newest.port, PINNED, "2026-12-01T12:00:00Z"),
        "c": tunnel(stranger.port, OTHER, "2026-12-01T13:00:00Z")}}))
    record(last.port, PINNED, "2026-12-01T10:00:00Z", None)  # no Drive folder: the API alone finds it
    done = relay(last.port, {"NGROK_API_KEY": API_KEY, "COLABSSH_NGROK_API_URL": url})
    assert (done.returncode, done.stdout) == (0, "newest\n"), done.stderr
    assert f"127.0.0.1:{newest.port} now (the ngrok API)" in done.stderr


def test_a_dead_tunnel_of_the_api_is_skipped(client_key, tmp_path, speakers, ngrok_api):
    cloud, url = ngrok_api
    last = Speaker("last")
    speakers.append(last)
    cloud.write_text(json.dumps({"endpoints": {"a": tunnel(dead_port(), PINNED, "2026-12-01T12:00:00Z")}}))
    record(last.port, PINNED, "2026-12-01T10:00:00Z", None)
    done = relay(last.port, {"NGROK_API_KEY": API_KEY, "COLABSSH_NGROK_API_URL": url})
    assert (done.returncode, done.stdout) == (0, "last\n") and "(the ngrok API) does not answer" in done.stderr


def test_a_bad_key_is_said_and_the_last_address_used(client_key, tmp_path, speakers, ngrok_api):
    cloud, url = ngrok_api
    last, newest = Speaker("last"), Speaker("newest")
    speakers += [last, newest]
    cloud.write_text(json.dumps({"endpoints": {"a": tunnel(newest.port, PINNED, "2026-12-01T12:00:00Z")}}))
    record(last.port, PINNED, "2026-12-01T10:00:00Z", None)
    done = relay(last.port, {"NGROK_API_KEY": "not-the-key", "COLABSSH_NGROK_API_URL": url})
    assert (done.returncode, done.stdout) == (0, "last\n")
    assert "the ngrok API refused NGROK_API_KEY (401 ERR_NGROK_203)" in done.stderr and "not-the-key" not in \
        done.stderr


def test_a_slow_api_is_given_up_after_a_short_time(client_key, tmp_path, speakers):
    cloud = tmp_path / "cloud.json"
    api, url = start_ngrok_api(cloud, "--delay", "20")
    try:
        last = Speaker("last")
        speakers.append(last)
        record(last.port, PINNED, "2026-12-01T10:00:00Z", None)
        started = time.monotonic()
        done = relay(last.port, {"NGROK_API_KEY": API_KEY, "COLABSSH_NGROK_API_URL": url})
        assert time.monotonic() - started < ngrok_api.TIMEOUT + 5
        assert (done.returncode, done.stdout) == (0, "last\n") and "the ngrok API did not answer" in done.stderr
    finally:
        api.terminate()
        api.wait()
