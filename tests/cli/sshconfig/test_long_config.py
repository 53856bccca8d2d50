"""A long ~/.ssh/config (thousands of lines, Host patterns everywhere) costs connect one linear read: every pattern
is compiled once, and the alias collision check reads the file once per connect."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from colabssh_cli.app import main
from colabssh_cli.sshconfig import plan, text
from colabssh_cli.sshconfig.plan import find_alias_collision
from tests.cli.connection.test_flow import GOOD


def long_user_config(lines: int = 5000) -> bytes:
    """A realistic big config: Host blocks with several names and patterns, some Match blocks, a Host * at the end."""
    out: list[str] = []
    i = 0
    while True:
        if i % 10 == 9:
            block = [f"Match host build-{i}-*,ci-{i}?.example.org user ci", "  ForwardAgent no", ""]
        else:
            block = [f"Host web-{i} web-{i}.example.com *.corp-{i}.example.net db-?{i} !bastion-{i}-*",
                     f"  HostName 10.{i // 250 % 250}.{i % 250}.1", "  User deploy", f"  IdentityFile ~/.ssh/id_{i}",
                     "  ServerAliveInterval 30", ""]
        if len(out) + len(block) > lines - 4:
            break
        out += block
        i += 1
    out += ["# (padding)"] * (lines - 4 - len(out))
    out += ["Host *", "  AddKeysToAgent yes", "  ServerAliveInterval 60", ""]
    return "\n".join(out).encode() + b"\n"


def wildcard_patterns(data: bytes) -> set[tuple[str, bool]]:
    """Every (pattern, ignore_case) that holds a wildcard, as the collision check reads them."""
    found: set[tuple[str, bool]] = set()
    for line in text.split_lines(data):
        parsed = text.keyword_and_rest(line)
        if parsed is None:
            continue
        if parsed[0] == "host":
            found |= {(p.lstrip("!"), False) for p in text.split_args(parsed[1]) if "*" in p or "?" in p}
        elif parsed[0] == "match":
            args = text.split_args(parsed[1])
            for value in (args[k + 1] for k, a in enumerate(args[:-1]) if a.lower() in ("host", "originalhost")):
                found |= {(p.lstrip("!"), True) for p in value.split(",") if "*" in p or "?" in p}
    return found


def test_the_config_is_5000_lines_of_patterns():
    data = long_user_config()
    assert data.count(b"\n") == 5000
    assert len(wildcard_patterns(data)) > 1000  # more than re's own cache (512) holds


def test_each_pattern_is_compiled_once_at_most():
    data = long_user_config()
    find_alias_collision.cache_clear()
    text.pattern_regex.cache_clear()
    assert find_alias_collision(data, "colab") is None  # the Host * at the end is read, and a bare * names nothing
    assert text.pattern_regex.cache_info().misses <= 1  # "*" alone: the other patterns cannot match 'colab'
    names = ["colab", "web-3", "a.corp-12.example.net", "db-x7", "ci-9x.example.org", "build-19-z", "bastion-4-q"]
    for name in names:
        find_alias_collision(data, name)
    compiled = text.pattern_regex.cache_info().misses
    assert 0 < compiled <= len(wildcard_patterns(data))
    find_alias_collision.cache_clear()  # read it all again from scratch: no pattern is compiled a second time
    for name in names:
        find_alias_collision(data, name)
    assert text.pattern_regex.cache_info().misses == compiled


@pytest.mark.parametrize("pattern", ["*", "a*", "*a", "a*b", "a?b", "?", "*?*", "a*b*c", "ab", "*.x.org", "x?*y"])
@pytest.mark.parametrize("name", ["", "a", "ab", "aab", "abb", "acb", "abc", "axbyc", "w.x.org", "x.org", "xzy", "xy"])
def test_the_quick_rule_out_never_hides_a_match(pattern: str, name: str) -> None:
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    for ignore_case, shown in ((False, name), (True, name.upper())):
        expected = re.fullmatch(regex, shown, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None
        assert text.wildcard_match(pattern, shown, ignore_case=ignore_case) == expected


def test_the_cached_patterns_still_match_as_openssh_does():
    data = long_user_config()
    find_alias_collision.cache_clear()
    assert find_alias_collision(data, "web-7") == (43, "Host web-7 web-7.example.com *.corp-7.example.net db-?7 "
                                                       "!bastion-7-*")
    assert find_alias_collision(data, "x.corp-12.example.net")[0] == 70
    assert find_alias_collision(data, "db-x3") is not None and find_alias_collision(data, "db-xy3") is None
    assert find_alias_collision(data, "BUILD-19-a") is not None  # Match host: case-insensitive
    assert find_alias_collision(data, "bastion-5-x") is None  # only a negation and Host * name it


def test_a_connect_reads_the_long_config_once(isolated_home: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    user_config = isolated_home / ".ssh" / "config"
    user_config.parent.mkdir(mode=0o700)
    data = long_user_config()
    user_config.write_bytes(data)
    user_config.chmod(0o600)
    host_lines = sum(1 for line in text.split_lines(data) if (text.keyword_and_rest(line) or ("",))[0] == "host")
    calls: list[str] = []
    real = text.names_alias

    def counted(patterns: list[str], alias: str, *, ignore_case: bool = False) -> bool:
        if not ignore_case:
            calls.append(alias)
        return real(patterns, alias, ignore_case=ignore_case)

    monkeypatch.setattr(plan.text, "names_alias", counted)
    find_alias_collision.cache_clear()
    assert main(["connect", GOOD, "--no-open", "--no-check"]) == 0, capsys.readouterr().err
    assert len(calls) == host_lines  # once per Host line: planned once, the same plan applied
    assert user_config.read_bytes().endswith(data)
