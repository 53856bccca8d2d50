"""`colabssh connect` refuses every bad code (or colab-ssh option) with one line, exit 2, and writes nothing."""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from colab_bootstrap import conncode
from colabssh_cli.app import main
from colabssh_cli.connection.tunnel_input import code_from_words
from colabssh_cli.errors import BAD_INPUT, ColabsshError

HOST_KEY = "ssh-ed25519 " + base64.b64encode(
    b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))).decode()
INFO = conncode.ConnectionInfo(host="0.tcp.ngrok.io", port=12345, user="root", hostkey=HOST_KEY, tunnel="ngrok",
                               content="/content", drive="/content/drive/MyDrive", python="/usr/bin/python3",
                               gpu="Tesla T4")
GOOD = conncode.encode(INFO)
PWNED = "x\nHost *\n  ProxyCommand touch PWNED"


def tree(home: Path) -> dict[str, bytes]:
    """Every file under HOME with its bytes (what 'nothing written' is checked against)."""
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def refuse(code: str, home: Path, capsys: pytest.CaptureFixture[str]) -> str:
    before = tree(home)
    capsys.readouterr()
    assert main(["connect", "--no-open", "--", code]) == BAD_INPUT
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert 1 <= len(lines) <= 2 and lines[0].startswith("colabssh: error: ")
    assert all(line.startswith("  hint: ") for line in lines[1:])
    assert tree(home) == before
    assert not (Path.cwd() / "PWNED").exists()
    return lines[0]


def mutations(code: str) -> st.SearchStrategy[str]:
    n = len(code)
    return st.one_of(
        st.integers(1, n - 1).map(lambda k: code[:k]),  # truncated paste
        st.just(code + code),  # doubled paste
        st.just(code + " " + code),
        st.integers(1, n - 1).map(lambda k: code[:k] + "\r" + code[k:]),  # a CR in the middle
        st.integers(1, n - 1).map(lambda k: code[:k] + "\u200d" + code[k:]),  # zero-width joiner
        st.integers(1, n - 1).map(lambda k: code[:k] + "\u201d" + code[k:]),  # a smart quote inside
        st.just(code.replace("colabssh1:", "colabssh2:", 1)),
        st.just(code.replace("colabssh1:", "Colabssh1:", 1)),
        st.tuples(st.integers(11, n - 1), st.characters(codec="ascii")).map(
            lambda kc: code[:kc[0]] + kc[1] + code[kc[0] + 1:]),  # one character changed
        st.tuples(st.integers(0, n - 1), st.text(min_size=1, max_size=8)).map(
            lambda kt: code[:kt[0]] + kt[1] + code[kt[0]:]),  # random text inserted
    )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_real_codes_are_refused(data: st.DataObject, isolated_home: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = data.draw(mutations(GOOD))
    try:
        decoded = conncode.decode(code_from_words([code]) or "")
    except (conncode.CodeError, ColabsshError):
        decoded = None
    assume(decoded is None)  # a mutation that still decodes (a CR at the end, a quote around it) is the same code
    refuse(code, isolated_home, capsys)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300) | st.from_regex(r"colabssh1:[A-Za-z0-9_\-.]{0,80}", fullmatch=True))
@example(text="")
@example(text=PWNED)
@example(text="colabssh2:" + GOOD.split(":", 1)[1])
@example(text="-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----")
def test_random_text_is_refused(text: str, isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assume("\x00" not in text)  # argv cannot carry NUL; the in-process path is tested in test_injection_fields
    refuse(text, isolated_home, capsys)


INJECTIONS = [
    {"host": PWNED}, {"host": "-oProxyCommand=id"}, {"host": "a b"}, {"host": "*"}, {"host": "a\u00a0b"},
    {"host": "evil\r"}, {"host": "host\n"}, {"user": "root\n"}, {"user": "root -oProxyCommand=id"},
    {"content": "/content\nHost *"}, {"content": 'x" ProxyCommand'}, {"python": "python3"},
    {"python": "/usr/bin/python3\n"},
    {"hostkey": HOST_KEY + "\nHost *"}, {"hostkey": "ssh-rsa AAAAB3NzaC1yc2E="}, {"tunnel": "ssh"},
    {"gpu": "T4\x00"},
]


@pytest.mark.parametrize("field", INJECTIONS, ids=[next(iter(f)) + str(i) for i, f in enumerate(INJECTIONS)])
def test_injection_fields_with_a_valid_checksum_are_refused(field: dict[str, str], isolated_home: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A code re-encoded with a hostile field (so the checksum is right) is still refused."""
    import hashlib
    import json

    data = {"v": 1, **INFO.__dict__, **field}
    payload = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    code = f"colabssh1:{payload}.{hashlib.sha256(payload.encode()).hexdigest()[:8]}"
    refuse(code, isolated_home, capsys)


@pytest.mark.parametrize("port", ["0", "65536", "22 ", "+22", "2_2", "\u0662\u0662", "\u00b2", "22\n", "-1", ""])
def test_colab_ssh_ports_are_ascii_digits_in_range(port: str, isolated_home: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    before = tree(isolated_home)
    assert main(["connect", "--no-open", "--host", "0.tcp.ngrok.io", "--port", port, "--password"]) == BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("colabssh: error: ") and "Traceback" not in err
    assert tree(isolated_home) == before


@pytest.mark.parametrize("argv, says", [
    (["--host", PWNED, "--port", "22", "--password"], "not a valid"),
    (["--host", "0.tcp.ngrok.io", "--password"], "--host needs --port"),
    (["--host", "0.tcp.ngrok.io", "--port", "2222"], "add --password"),
    (["--cloudflared-host", "a.trycloudflare.com", "--host", "x", "--password"], "not both"),
    (["--password", GOOD], "only for colab-ssh"),
    (["--host", "h.example", "--port", "22", "--password", GOOD], "not both"),
    (["--name", "colab\nHost *", GOOD], "alias"),
    (["--name", "col*", GOOD], "alias"),
    (["--editor", "vim", GOOD], "unknown editor"),
    ([], "no connection code"),
])
def test_bad_options_are_refused(argv: list[str], says: str, isolated_home: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = tree(isolated_home)
    assert main(["connect", "--no-open", *argv]) == BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("colabssh: error: ") and says in err and len(err.splitlines()) <= 2
    assert "Traceback" not in err
    assert tree(isolated_home) == before


def test_the_good_code_decodes(isolated_home: Path) -> None:
    """The fuzz above starts from a code that is itself valid (so its mutations are what is refused)."""
    assert conncode.decode(GOOD) == INFO
    assert conncode.decode(GOOD + "\r\n") == INFO
    assert replace(INFO, port=1) != INFO
    assert os.environ["HOME"] == str(isolated_home)
