"""A1/A2/A3/A4/A11 as a property: for random user configs, connect keeps every byte outside the
block, `ssh -G` shows colabssh's values win, connecting again writes nothing, and forget gives back
the very bytes (or the missing file) that were there."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from colabssh_cli.paths import Paths
from colabssh_cli.sshconfig.apply import apply
from colabssh_cli.sshconfig.plan import plan_connect
from colabssh_cli.sshconfig.render import BEGIN_MARKER
from tests.cli.sshconfig.test_support import KEY_A, KEY_B, assert_ours_win, connect, entry, forget, snapshot, ssh_g

_LINES = [
    b"Host *", b"Host foo", b"Host *.example.com bar", b"Host caf\xe9", b"Host !colab *", b"Match all",
    b"Match host bar", b"Match originalhost baz,qux", b"  User alice", b"\tUser\tbob", b"  Port 2222",
    b"  StrictHostKeyChecking no", b"  UserKnownHostsFile /dev/null", b"  CheckHostIP yes",
    b"  IdentityFile /nonexistent/colabssh-test/id", b"  IdentitiesOnly no", b"  HostKeyAlias other",
    b"HostName=evil.example", b"  UpdateHostKeys yes", b"  HashKnownHosts yes", b"  ServerAliveInterval 1",
    b"Include /nonexistent/colabssh-test/*", b"Include /nonexistent/colabssh-test/one.conf", b"", b"   ", b"\t",
]

_comment = st.binary(max_size=60).map(lambda raw: b"# " + bytes(b for b in raw if b not in b"\r\n"))
_odd_comment = st.lists(st.sampled_from([bytes([b]) for b in range(0x80, 0x100)] + [b"x", b" ", b"#"]),
                        max_size=30).map(lambda parts: b"#" + b"".join(parts))
_line = st.one_of(st.sampled_from(_LINES), _comment, _odd_comment,
                  st.integers(200, 3000).map(lambda n: b"# long " + b"y" * n))


@st.composite
def user_configs(draw: st.DrawFn) -> bytes | None:
    if draw(st.integers(0, 15)) == 0:
        return None
    lines = draw(st.lists(_line, max_size=14))
    style = draw(st.sampled_from(["lf", "crlf", "mixed"]))
    endings = [b"\r\n" if style == "crlf" or (style == "mixed" and draw(st.booleans())) else b"\n" for _ in lines]
    data = b"".join(line + eol for line, eol in zip(lines, endings, strict=True))
    if lines and draw(st.booleans()):  # no final newline
        data = data[: -len(endings[-1])]
    return data


@settings(max_examples=60, deadline=None)
@given(original=user_configs(), port=st.integers(1, 65535))
def test_connect_keeps_the_users_bytes_wins_in_ssh_and_forget_restores_them(original: bytes | None,
                                                                          port: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        paths = Paths(Path(folder))
        if original is not None:
            paths.ssh_dir.mkdir(mode=0o700)
            paths.user_config.write_bytes(original)

        connect(paths, port=port)
        data = paths.user_config.read_bytes()
        assert data.startswith(BEGIN_MARKER.encode())
        assert data.endswith(original or b"")
        if original:
            assert data.count(b"\r\n") - original.count(b"\r\n") in (0, 4)  # the block follows the file's endings
        assert_ours_win(paths, port=port)

        before = snapshot(paths.user_config, paths.config, paths.known_hosts)
        again = plan_connect(paths, entry(paths, port=port), KEY_A)
        assert not again.changed() and apply(paths, again) == []
        assert snapshot(paths.user_config, paths.config, paths.known_hosts) == before

        connect(paths, key=KEY_B, port=port % 65535 + 1)
        assert paths.user_config.read_bytes() == data
        assert ssh_g(paths.user_config)["port"] == [str(port % 65535 + 1)]

        forget(paths)
        if original is None:
            assert not paths.user_config.exists()
        else:
            assert paths.user_config.read_bytes() == original
        assert not paths.config.exists() and not paths.known_hosts.exists()
