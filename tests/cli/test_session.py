"""session.py: the one description of a runtime. Its transport and login are enums, checked where a session
enters (a code, the options, sessions.json), and sessions.json keeps its plain-string format."""

from __future__ import annotations

import json

import pytest

from colabssh_cli.errors import BAD_INPUT, FAILURE, ColabsshError
from colabssh_cli.paths import Paths
from colabssh_cli.session import Login, Session, Transport, load_sessions, sessions_bytes
from tests.cli.connection.test_flow import GOOD, INFO


def test_a_code_becomes_a_session_with_every_field():
    session = Session.from_code("colab", f"  {GOOD}\n")
    assert (session.host, session.port, session.user, session.hostkey) == (INFO.host, INFO.port, INFO.user,
                                                                           INFO.hostkey)
    assert session.tunnel is Transport.NGROK and session.auth is Login.KEY
    assert session.code == GOOD and session.pinned and session.fingerprint == INFO.fingerprint
    assert session.address == f"{INFO.host}:{INFO.port}"


def test_a_bad_code_is_bad_input():
    with pytest.raises(ColabsshError) as caught:
        Session.from_code("colab", GOOD[:-3])
    assert caught.value.exit_code == BAD_INPUT and caught.value.message.startswith("bad connection code: ")


def test_the_kinds_are_checked_once_as_a_session_is_made():
    assert Session(alias="a", host="h", port=1, user="u", tunnel="local").tunnel is Transport.LOCAL  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Session(alias="a", host="h", port=1, user="u", tunnel="carrier-pigeon")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Session(alias="a", host="h", port=1, user="u", tunnel=Transport.LOCAL, auth="token")  # type: ignore[arg-type]


def test_one_address_per_transport():
    def make(tunnel: Transport, **extra: object) -> Session:
        return Session(alias="colab", host="x.example", port=2222, user="root", tunnel=tunnel, **extra)  # type: ignore[arg-type]

    assert make(Transport.NGROK).address == "x.example:2222"
    assert make(Transport.LOCAL).address == "x.example:2222"
    assert make(Transport.CLOUDFLARED).address == "x.example"
    via_colab = make(Transport.COLAB_CLI, extra={"session": "work"})
    assert via_colab.address == "colab-cli:work" and via_colab.colab_session == "work"
    assert make(Transport.NGROK).colab_session == ""


def test_sessions_json_keeps_plain_strings_and_reads_back_equal(isolated_home):
    session = Session(alias="colab", host="127.0.0.1", port=2222, user="root", tunnel=Transport.COLAB_CLI,
                      auth=Login.KEY, extra={"session": "s"})
    raw = sessions_bytes({"colab": session})
    assert raw is not None
    stored = json.loads(raw)["sessions"]["colab"]
    assert (stored["tunnel"], stored["auth"]) == ("colab-cli", "key")
    assert f"{session.tunnel} {session.auth}" == "colab-cli key"  # as `list` and `connect` print them
    paths = Paths.from_env()
    paths.sessions.parent.mkdir(parents=True)
    paths.sessions.write_bytes(raw)
    assert load_sessions(paths) == {"colab": session}


def test_an_unknown_transport_in_sessions_json_is_a_damaged_file(isolated_home):
    paths = Paths.from_env()
    paths.sessions.parent.mkdir(parents=True)
    paths.sessions.write_text(json.dumps({"version": 1, "sessions": {"colab": {
        "alias": "colab", "host": "h", "port": 22, "user": "root", "tunnel": "carrier-pigeon"}}}))
    with pytest.raises(ColabsshError) as caught:
        load_sessions(paths)
    assert caught.value.exit_code == FAILURE and "is damaged" in caught.value.message


RECORDED = {alias: Session(alias=alias, host="127.0.0.1", port=2222, user="root", tunnel=Transport.LOCAL)
            for alias in ("colab", "gpu-box")}


@pytest.mark.parametrize("argv", [["status", "colb"], ["ssh", "colb"], ["ssh", "colb", "--", "true"],
                                  ["sync", "--name", "colb"], ["demo", "--name", "colb"],
                                  ["pull", "--name", "colb", "x"], ["forward", "6006", "--name", "colb"],
                                  ["restore", "--name", "colb"]])
def test_a_near_miss_alias_is_answered_with_the_recorded_one(argv, isolated_home, capsys):
    """A typo in an alias, wherever a session is looked up: the same error and exit code, and the alias meant."""
    from colabssh_cli.app import main
    from colabssh_cli.session import save_sessions

    save_sessions(Paths.from_env(), RECORDED)
    assert main(argv) == BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("colabssh: error: no session named 'colb'; did you mean 'colab'?\n"), err
    assert len(err.splitlines()) == 2 and err.splitlines()[1].startswith("  hint: ")


@pytest.mark.parametrize("alias, meant", [("colb", "colab"), ("colabb", "colab"), ("gpu_box", "gpu-box"),
                                          ("gpubox", "gpu-box"), ("zzz", None), ("tpu", None), ("c", None)])
def test_only_a_close_alias_is_suggested(alias, meant, isolated_home):
    from colabssh_cli.session import resolve, save_sessions

    save_sessions(Paths.from_env(), RECORDED)
    with pytest.raises(ColabsshError) as caught:
        resolve(alias)
    assert caught.value.exit_code == BAD_INPUT
    suffix = f"; did you mean {meant!r}?" if meant else ""
    assert caught.value.message == f"no session named {alias!r}{suffix}"


def test_no_suggestion_without_sessions(isolated_home):
    from colabssh_cli.session import did_you_mean, resolve

    with pytest.raises(ColabsshError) as caught:
        resolve("colb")
    assert caught.value.message == "no session named 'colb'"
    assert did_you_mean("colb", []) == ""


@pytest.mark.parametrize("code, said", [("colabssh1:" + "A" * 60, "bad connection code: malformed or truncated"),
                                        ("", "bad connection code: empty")])
def test_a_bad_codes_reason_does_not_name_the_code_twice(code, said):
    with pytest.raises(ColabsshError) as caught:
        Session.from_code("colab", code)
    assert caught.value.message.startswith(said) and caught.value.message.count("connection code") == 1
