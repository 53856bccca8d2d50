"""Codes whose checksum is right but whose JSON is odd: every path from a code to a file, over the decoded JSON.

A code is JSON under a checksum, and anyone can make a code with a right checksum. For any JSON object, `connect`
either refuses it (exit 2, one line, every file as it was: same bytes, same inode, no backup) or writes a config
that OpenSSH reads exactly as the code says (``ssh -G`` is the oracle), and `forget` then gives the user's bytes
back. Text from a code is printed as plain text, never as rich markup.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from colab_bootstrap import conncode
from colabssh_cli.app import main
from colabssh_cli.console import plain
from colabssh_cli.errors import BAD_INPUT
from colabssh_cli.paths import Paths
from colabssh_cli.session import load_sessions
from tests.cli.connection.test_flow import HOST_KEY, INFO
from tests.cli.sshconfig.test_support import ssh_g
from tests.fakes import path_with_standins

USER_CONFIG = b"Host mine\r\n  HostName example.org\r\n# caf\xe9"  # odd bytes: kept exactly


def code_of(data: Any) -> str:
    """A code with a right checksum around any JSON value (what an attacker or a buggy runtime could send)."""
    payload = base64.urlsafe_b64encode(json.dumps(data).encode("utf-8", "surrogatepass")).decode().rstrip("=")
    return f"colabssh1:{payload}.{hashlib.sha256(payload.encode()).hexdigest()[:8]}"


def base(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"v": 1, **INFO.__dict__}
    data.update(changes)
    return data


def files(home: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under HOME but the lock, with its bytes and inode."""
    return {str(p.relative_to(home)): (p.read_bytes(), p.stat().st_ino) for p in sorted(home.rglob("*"))
            if p.is_file() and p.name != ".colabssh.lock"}


@pytest.fixture
def home(isolated_home: Path, client_key: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", path_with_standins())  # cloudflared codes need a cloudflared for their ProxyCommand
    paths = Paths.from_env()
    paths.user_config.write_bytes(USER_CONFIG)
    paths.user_config.chmod(0o600)
    return isolated_home


def connect_quietly(code: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code_ = main(["connect", "--no-open", "--no-check", "--", code])
    return code_, capsys.readouterr().err


# ---- the faults found from outside, one by one --------------------------------------------------------------


def test_a_code_without_the_optional_gpu_field_connects(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = base()
    del data["gpu"]
    status, err = connect_quietly(code_of(data), capsys)
    assert status == 0, err
    assert load_sessions(Paths.from_env())["colab"].gpu == ""
    assert conncode.decode(code_of({**data, "gpu": None})).gpu == ""


@pytest.mark.parametrize("nested", [
    [[[]]], {"a": {"b": 1}}, "[" * 5000 + "]" * 5000, {"x": "[" * 3000},
])
def test_nested_json_is_refused_without_a_traceback(nested: Any, home: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    before = files(home)
    raw = nested if isinstance(nested, str) else json.dumps(nested)
    data = raw if isinstance(nested, str) and nested.startswith("[") else json.dumps(base(gpu=nested))
    payload = base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")
    code = f"colabssh1:{payload}.{hashlib.sha256(payload.encode()).hexdigest()[:8]}"
    if len(code) > conncode.MAX_CODE_LENGTH:  # too long for a code: check the decoder of its JSON directly
        with pytest.raises(conncode.CodeError):
            conncode.decode(code)
        return
    status, err = connect_quietly(code, capsys)
    assert status == BAD_INPUT and "Traceback" not in err and err.startswith("colabssh: error: ")
    assert files(home) == before


def test_deep_nesting_within_the_length_limit_is_refused() -> None:
    """~2,000 levels fit in a 4 KiB code: json would raise RecursionError; the decoder says 'malformed'."""
    text = "[" * 1500 + "]" * 1500
    payload = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    code = f"colabssh1:{payload}.{hashlib.sha256(payload.encode()).hexdigest()[:8]}"
    assert len(code) <= conncode.MAX_CODE_LENGTH
    with pytest.raises(conncode.CodeError, match="malformed"):
        conncode.decode(code)


def test_a_repeated_key_is_refused() -> None:
    good = json.dumps(base())
    twice = good[:-1] + ', "host": "evil.example"}'
    payload = base64.urlsafe_b64encode(twice.encode()).decode().rstrip("=")
    code = f"colabssh1:{payload}.{hashlib.sha256(payload.encode()).hexdigest()[:8]}"
    with pytest.raises(conncode.CodeError, match="'host' twice"):
        conncode.decode(code)


@pytest.mark.parametrize("host", [
    "127.1", "0x7f.1", "0x7f000001", "2130706433", "010.1.1.1", "127.0.0.01", "1.2.3.4.5", "example.123",
    "FE80::1", "fe80::1%lo", "fe80::1%25eth0", "::ffff:7f00:1", "::ffff:127.0.0.1", "::102:304",
    "2001:DB8::1", "2001:db8:0:0:0:0:0:1",
])
def test_hosts_that_ssh_would_rewrite_are_refused_before_anything_is_written(
        host: str, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = files(home)
    status, err = connect_quietly(code_of(base(host=host)), capsys)
    assert status == BAD_INPUT, err
    assert err.startswith("colabssh: error: bad connection code: the host") and "Traceback" not in err
    assert "~/.ssh/config" not in err and "overrides" not in err  # the code is at fault, not the user's config
    assert files(home) == before  # same bytes, same inode, no backup


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "fe80::1", "2001:db8::1", "0.tcp.ngrok.io",
                                  "Example.COM", "x-1.trycloudflare.com"])
def test_canonical_hosts_connect_as_written(host: str, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = connect_quietly(code_of(base(host=host)), capsys)
    assert status == 0, err
    assert ssh_g(Paths.from_env().user_config)["hostname"] == [host.lower()]


@pytest.mark.parametrize("gpu", ["[link=https://evil.example]Tesla T4[/link]", "[bold red]T4", "T4 [/]"])
def test_text_from_a_code_is_listed_as_plain_text(gpu: str, home: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # one line per row
    status, err = connect_quietly(code_of(base(gpu=gpu)), capsys)
    assert status == 0, err
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert gpu in out  # markup would have eaten the brackets


def test_control_characters_are_shown_not_obeyed() -> None:
    assert plain("T4\x1b]8;;https://evil\x07x\x1b]8;;\x07") == "T4\\x1b]8;;https://evil\\x07x\\x1b]8;;\\x07"
    assert plain("a\u202eb\rc\td\ne") == "a\\u202eb\\rc\td\ne"
    assert plain("caf\u00e9 ü [x]") == "caf\u00e9 ü [x]"


# ---- the property: over any decoded JSON ---------------------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                    st.text(max_size=30))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=3), max_leaves=6)
HOSTS = st.sampled_from(["0.tcp.ngrok.io", "127.0.0.1", "::1", "x.trycloudflare.com", "127.1", "0x7f.1", "FE80::1",
                         "fe80::1%lo", "::ffff:7f00:1", "a b", "-oProxyCommand=id", "*", "h\nHost *", "",
                         "a" * 300, "xn--caf-dma.example", "caf\u00e9.example"])
PATHS = st.sampled_from(["/content", "/content/drive/MyDrive", "/usr/bin/python3", "relative", "/a b/c", "/x\ny",
                         "/[link=x]y[/link]", '/"q"', "/caf\u00e9", "/\u202eevil", "", "/" + "a" * 1100])
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "v": st.sampled_from([1, 1, 1, 2, "1", True, 1.0]),
    "host": HOSTS | JSON,
    "port": st.sampled_from([22, 2222, 65535, 0, 65536, -1, True, "22", 22.0]) | JSON,
    "user": st.sampled_from(["root", "colab_user", "Root", "-x", "a" * 40, "root\n"]) | JSON,
    "hostkey": st.sampled_from([HOST_KEY, HOST_KEY + " comment", HOST_KEY[:-4], "ssh-rsa AAAA", ""]) | JSON,
    "tunnel": st.sampled_from(["ngrok", "cloudflared", "local", "colab-cli", "ssh"]) | JSON,
    "content": PATHS | JSON, "drive": PATHS | JSON, "python": PATHS | JSON,
    "gpu": st.sampled_from(["Tesla T4", "[link=http://x]T4[/link]", "", "T4\x1b[2J", "x" * 200]) | JSON,
}


@st.composite
def code_objects(draw: st.DrawFn) -> dict[str, Any]:
    data = {name: draw(strategy) if draw(st.integers(0, 9)) == 0 else base()[name]  # ~1 odd field a code
            for name, strategy in FIELDS.items()}
    if draw(st.integers(0, 3)) == 0:
        data.pop(draw(st.sampled_from(sorted(FIELDS))), None)  # a field left out
    if draw(st.booleans()) and draw(st.booleans()):
        data[draw(st.text(min_size=1, max_size=8))] = draw(SCALARS)  # a field this colabssh does not know
    return data


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=code_objects())
@example(data={k: v for k, v in base().items() if k != "gpu"})
@example(data=base(host="127.1"))
@example(data=base(gpu=[[[]]]))
def test_any_json_object_is_refused_cleanly_or_written_as_ssh_reads_it(data: dict[str, Any], home: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    paths = Paths.from_env()
    before = files(home)
    status, err = connect_quietly(code_of(data), capsys)
    assert "Traceback" not in err
    event("refused" if status else "accepted")
    if status != 0:
        assert status == BAD_INPUT, err
        lines = err.splitlines()
        assert lines[0].startswith("colabssh: error: bad connection code: ") and len(lines) <= 2, err
        assert files(home) == before
        return
    info = conncode.decode(code_of(data))  # what was accepted decodes the same on its own
    seen = ssh_g(paths.user_config)
    assert (seen["hostname"], seen["port"], seen["user"]) == ([info.host.lower()], [str(info.port)], [info.user])
    session = load_sessions(paths)["colab"]
    assert (session.host, session.gpu, session.content, session.python) == (info.host, info.gpu, info.content,
                                                                             info.python)
    assert main(["forget", "colab"]) == 0
    assert paths.user_config.read_bytes() == USER_CONFIG
    assert not paths.config.exists() and not paths.known_hosts.exists() and not paths.sessions.exists()


@settings(max_examples=300, deadline=None)
@given(host=st.ip_addresses().map(str) | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.:%-]{0,40}", fullmatch=True))
def test_validation_and_the_renderer_agree_on_every_host(host: str) -> None:
    """Validated once, fully: a host the code's validation accepts is one the ssh config renderer writes."""
    from colabssh_cli.sshconfig.render import HostEntry, render_host_entry

    try:
        conncode.validate_host(host)
    except conncode.CodeError:
        return
    entry = HostEntry(alias="colab", hostname=host, port=22, user="root", identity_file=Path("/k"),
                      known_hosts=Path("/kh"), host_key_alias="colabssh-colab", strict_host_key_checking="yes")
    assert f"  HostName {host}\n" in render_host_entry(entry)


@pytest.mark.parametrize("alias, says", [
    ("Colab", "capital letters"), ("localhost", "names this machine"), ("127.0.0.1", "names this machine"),
    ("2130706433", "names this machine"), ("localhost.localdomain", "names this machine"),
])
def test_aliases_ssh_would_lowercase_or_that_name_this_machine_are_refused(
        alias: str, says: str, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = files(home)
    capsys.readouterr()
    assert main(["connect", "--no-open", "--no-check", "--name", alias, code_of(base())]) == BAD_INPUT
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert files(home) == before


@pytest.mark.parametrize("change, says", [
    ({"v": 1.0}, "inner version"), ({"v": True}, "inner version"), ({"host": "0.0.0.0"}, "unspecified"),
    ({"host": "::"}, "unspecified"), ({"port": 10**300}, "characters"),
])
def test_odd_values_that_json_allows_are_refused(change: dict[str, Any], says: str) -> None:
    with pytest.raises(conncode.CodeError, match=says) as caught:
        conncode.decode(code_of(base(**change)))
    assert len(str(caught.value)) < 200


def test_an_unreadable_config_is_named_by_its_own_path_not_the_preview_copy(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A BOM makes ssh refuse ~/.ssh/config: the message names that file, not colabssh's temp copy of it."""
    paths = Paths.from_env()
    paths.user_config.write_bytes(b"\xef\xbb\xbf" + USER_CONFIG)
    before = files(home)
    status, err = connect_quietly(code_of(base()), capsys)
    assert status == BAD_INPUT and str(paths.user_config) in err and "colabssh-tmp" not in err, err
    assert files(home) == before
