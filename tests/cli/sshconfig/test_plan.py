"""The ssh config files of `connect`/`forget` (issue 3, promises A1-A18, B1-B4): planned as bytes,
checked with the real `ssh -G`, written atomically, with markers, collisions, modes, links and backups."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from colabssh_cli import errors
from colabssh_cli.errors import ColabsshError
from colabssh_cli.paths import Paths
from colabssh_cli.sshconfig.apply import apply
from colabssh_cli.sshconfig.backups import backups_of, kept_backups, original_of
from colabssh_cli.sshconfig.plan import Plan, find_alias_collision, plan_connect, plan_forget
from colabssh_cli.sshconfig.render import (
    BEGIN_MARKER,
    CREATED_NOTE,
    END_MARKER,
    HostEntry,
    control_dir_for,
    ensure_control_dir,
    render_host_entry,
)
from tests.cli.sshconfig.test_support import (
    KEY_A,
    KEY_B,
    assert_ours_win,
    connect,
    entry,
    forget,
    leftovers,
    snapshot,
    ssh_g,
)

BEGIN = BEGIN_MARKER.encode()
END = END_MARKER.encode()


@pytest.fixture
def paths(isolated_home: Path) -> Paths:
    return Paths(isolated_home)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path (pytest's tmp_path is too long for ssh's control sockets)."""
    folder = Path(tempfile.mkdtemp(prefix="cs", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def user_config(paths: Paths, data: bytes, mode: int = 0o600) -> bytes:
    paths.ssh_dir.mkdir(mode=0o700, exist_ok=True)
    paths.user_config.write_bytes(data)
    os.chmod(paths.user_config, mode)
    return data


def all_files(paths: Paths) -> dict[Path, tuple[bytes, int, int, int] | None]:
    return snapshot(paths.user_config, paths.config, paths.known_hosts)


# ------------------------------------------------------------------------------ the golden format


def test_marker_lines_are_a_stable_contract() -> None:
    assert BEGIN_MARKER == "# >>> colabssh managed block (do not edit; `colabssh forget` removes it) >>>"
    assert END_MARKER == "# <<< colabssh managed block <<<"


def test_a_missing_config_gets_exactly_the_block(paths: Paths) -> None:
    connect(paths)
    include = f"Include {paths.config}"
    assert paths.user_config.read_bytes() == (
        f"{BEGIN_MARKER}\n{CREATED_NOTE}\n{include}\n{END_MARKER}\n").encode()


def test_the_host_block_has_every_option_in_order(paths: Paths) -> None:
    block = render_host_entry(entry(paths, proxy_command='"/opt/cf dir/cloudflared" access ssh --hostname %h',
                                              control_dir=Path("/tmp/colabssh-0")))
    assert block == (
        "Host colab\n"
        "  HostName 0.tcp.ngrok.io\n"
        "  Port 12345\n"
        "  User root\n"
        f"  IdentityFile {paths.key}\n"
        "  IdentitiesOnly yes\n"
        "  HostKeyAlias colabssh-colab\n"
        f"  UserKnownHostsFile {paths.known_hosts}\n"
        "  StrictHostKeyChecking yes\n"
        "  CheckHostIP no\n"
        "  UpdateHostKeys no\n"
        "  HashKnownHosts no\n"
        "  PasswordAuthentication no\n"
        "  KbdInteractiveAuthentication no\n"
        "  ServerAliveInterval 15\n"
        "  ServerAliveCountMax 4\n"
        "  ConnectTimeout 20\n"
        '  ProxyCommand "/opt/cf dir/cloudflared" access ssh --hostname %h\n'
        "  ControlMaster auto\n"
        "  ControlPath /tmp/colabssh-0/%C\n"
        "  ControlPersist 10m\n")


def test_password_sessions_allow_a_password_but_still_offer_only_our_key(paths: Paths) -> None:
    block = render_host_entry(entry(paths, strict="ask", password_auth=True))
    assert "  PasswordAuthentication yes\n" in block and "PasswordAuthentication no" not in block
    assert "  IdentitiesOnly yes\n" in block and "  StrictHostKeyChecking ask\n" in block


def test_every_option_reaches_ssh_and_ours_win_over_the_users_defaults(paths: Paths) -> None:
    """A11/B1/B3/B4/B5: the oracle sees colabssh's values even under a user's Host * and Match all."""
    user_config(paths, b"User alice\nHost *\n  Port 2222\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
                       b"  CheckHostIP yes\n  IdentitiesOnly no\n  HostKeyAlias evil\n  HostName evil.example\n"
                       b"Match all\n  User mallory\n")
    connect(paths)
    assert_ours_win(paths)
    got = ssh_g(paths.user_config)
    assert got["updatehostkeys"] == ["false"] and got["hashknownhosts"] == ["no"]
    assert got["serveraliveinterval"] == ["15"] and got["serveralivecountmax"] == ["4"]
    assert got["connecttimeout"] == ["20"] and got["passwordauthentication"] == ["no"]


def test_paths_with_spaces_reach_ssh_literally(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "my home")
    paths.home.mkdir()
    connect(paths)
    assert f'Include "{paths.config}"' in paths.user_config.read_text()
    assert_ours_win(paths)


def test_percent_signs_in_token_paths_are_escaped(tmp_path: Path) -> None:
    odd = Path("/tmp/a b 100%")
    control = Path(tempfile.mkdtemp(prefix="c m%", dir="/tmp"))
    try:
        config = tmp_path / "cfg"
        config.write_text(render_host_entry(HostEntry(
            "colab", "h.example", 22, "root", odd / "key", odd / "known_hosts", "colabssh-colab", "yes",
            control_dir=control)))
        got = ssh_g(config)
        assert got["userknownhostsfile"] == [str(odd / "known_hosts")]
        assert got["identityfile"] == ["/tmp/a b 100%%/key"]  # ssh -G shows IdentityFile before expansion
        assert got["controlpath"][0].startswith(f"{control}/") and len(got["controlpath"][0]) == len(
            str(control)) + 41
    finally:
        shutil.rmtree(control)


def test_a_home_whose_path_ssh_would_expand_in_include_is_refused(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "100%")
    with pytest.raises(ColabsshError, match="cannot write an Include line") as caught:
        connect(paths)
    assert caught.value.exit_code == errors.BAD_INPUT and not paths.ssh_dir.exists()


@pytest.mark.parametrize("field, value", [
    ("alias", "colab\nHost *"), ("alias", "a b"), ("alias", "*"), ("alias", "-oProxyCommand=id"),
    ("hostname", "evil\n  ProxyCommand touch /tmp/PWNED"), ("hostname", "a b"), ("hostname", '"x"'),
    ("user", "root\n"), ("user", "a b"), ("host_key_alias", "x y"), ("port", 0), ("port", 65536), ("port", True),
    ("strict_host_key_checking", "no"), ("proxy_command", "cloudflared\nHost *"), ("proxy_command", " "),
    ("identity_file", Path("relative/key")), ("identity_file", Path('/a"b/key')), ("known_hosts", Path("/a\nb")),
    ("known_hosts", Path("/x/${HOME}/k")), ("control_dir", Path("/" + "d" * 60)),
])
def test_values_that_could_inject_or_break_a_line_are_refused(paths: Paths, field: str, value: object) -> None:
    good = entry(paths)
    bad = HostEntry(**{**good.__dict__, field: value})
    with pytest.raises(ValueError):
        render_host_entry(bad)
    with pytest.raises(ValueError):
        plan_connect(paths, bad, KEY_A)
    assert not paths.ssh_dir.exists()


@pytest.mark.parametrize("key", ["ssh-ed25519 AAAA\nHost *", "@revoked ssh-ed25519 AAAA", "ssh-ed25519", "x y z"])
def test_a_host_key_that_is_not_one_key_line_is_refused(paths: Paths, key: str) -> None:
    with pytest.raises(ValueError):
        plan_connect(paths, entry(paths), key)


# ---------------------------------------------------------------------------------- control path


def test_control_dir_is_under_colabssh_when_the_socket_path_fits(tmp_path: Path) -> None:
    paths = Paths(Path("/home/u"))
    assert control_dir_for(paths) == Path("/home/u/.ssh/colabssh/cm")


def test_control_dir_falls_back_to_a_short_private_folder_for_a_long_home(tmp_path: Path) -> None:
    short_root = Path(os.path.realpath("/tmp")) / f"cs{os.getpid()}"
    short_root.mkdir()
    try:
        paths = Paths(tmp_path / ("h" * 60))
        found = control_dir_for(paths, short_root=short_root)
        assert found.parent == short_root / f"colabssh-{os.geteuid()}" and re.fullmatch(r"[0-9a-f]{10}", found.name)
        assert found == control_dir_for(Paths(tmp_path / ("h" * 60)), short_root=short_root)  # the same each time
        assert control_dir_for(Paths(tmp_path / ("i" * 60)), short_root=short_root) != found  # a home of its own
        assert len(str(found)) + 1 + 40 + 17 < 104
        ensure_control_dir(found)
        assert stat.S_IMODE(os.lstat(found).st_mode) == 0o700
        # someone else's folder (here: a symlink planted there) is refused
        found.rmdir()
        found.symlink_to(tmp_path)
        with pytest.raises(ColabsshError, match="not a private folder"):
            control_dir_for(paths, short_root=short_root)
    finally:
        shutil.rmtree(short_root)


def test_the_control_dir_is_made_by_apply_and_a_vanished_one_is_a_change(paths: Paths, short_dir: Path) -> None:
    control = short_dir / "cm"
    connect(paths, control_dir=control)
    assert stat.S_IMODE(os.stat(control).st_mode) == 0o700
    assert not plan_connect(paths, entry(paths, control_dir=control), KEY_A).changed()
    control.rmdir()
    before = all_files(paths)
    plan = plan_connect(paths, entry(paths, control_dir=control), KEY_A)
    assert plan.changed() and plan.diff() == ""
    apply(paths, plan)
    assert control.is_dir() and all_files(paths) == before


# ------------------------------------------------------------------------- bytes outside the block


@pytest.mark.parametrize("original", [
    b"", b"\n", b"Host a\n  HostName a.example\n", b"Host a\r\n  Port 2222\r\n", b"Host a\n  Port 2",
    b"\xef\xbb\xbf# bom\n", b"# caf\xe9 \x80\xff\n\tUser x\r\n\n\n", b"Host a\r\n  Port 2\n# mixed\r\n",
])
def test_connect_then_forget_gives_back_the_same_bytes(paths: Paths, original: bytes) -> None:
    user_config(paths, original)
    connect(paths)
    data = paths.user_config.read_bytes()
    assert data.endswith(original)
    forget(paths)
    assert paths.user_config.read_bytes() == original
    assert not paths.config.exists() and not paths.known_hosts.exists()


def test_a_config_colabssh_created_is_removed_again(paths: Paths) -> None:
    connect(paths)
    connect(paths, "other", KEY_B, port=2)
    forget(paths)
    assert paths.user_config.exists()
    forget(paths, "other")
    assert not paths.user_config.exists() and not paths.config.exists() and not paths.known_hosts.exists()


def test_a_crlf_config_gets_a_crlf_block_and_nothing_mixed(paths: Paths) -> None:
    user_config(paths, b"Host a\r\n  Port 2222\r\n")
    connect(paths)
    data = paths.user_config.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n")
    assert data.startswith(BEGIN + b"\r\n")
    assert ssh_g(paths.user_config, "a")["port"] == ["2222"]
    assert_ours_win(paths)


def test_separator_rule_is_one_empty_line_after_the_block(paths: Paths) -> None:
    user_config(paths, b"Host a\n")
    connect(paths)
    assert paths.user_config.read_bytes() == (
        BEGIN + b"\n" + f"Include {paths.config}".encode() + b"\n" + END + b"\n\nHost a\n")


def test_user_edits_around_the_block_survive_connect_and_forget(paths: Paths) -> None:
    user_config(paths, b"Host a\n  Port 1\n")
    connect(paths)
    data = paths.user_config.read_bytes()
    paths.user_config.write_bytes(b"# above\n" + data + b"Host z\n")
    connect(paths, key=KEY_B, port=4)
    assert paths.user_config.read_bytes() == b"# above\n" + data + b"Host z\n"  # the block is not moved
    forget(paths)
    assert paths.user_config.read_bytes() == b"# above\nHost a\n  Port 1\nHost z\n"


def test_a_block_whose_include_is_stale_is_rewritten_in_place(paths: Paths, tmp_path: Path) -> None:
    user_config(paths, b"Host a\r\n")
    connect(paths)
    moved = paths.user_config.read_bytes().replace(str(paths.config).encode(), b"/old/home/.ssh/colabssh/config")
    paths.user_config.write_bytes(moved)
    connect(paths)
    data = paths.user_config.read_bytes()
    assert f"Include {paths.config}\r\n".encode() in data and b"/old/home" not in data
    assert data.endswith(b"\r\nHost a\r\n")


# --------------------------------------------------------------------------------- idempotence (A4)


def test_connect_twice_writes_nothing_the_second_time(paths: Paths) -> None:
    user_config(paths, b"Host a\n")
    connect(paths)
    before = all_files(paths)
    backups = backups_of(paths.user_config)
    plan = plan_connect(paths, entry(paths), KEY_A)
    assert not plan.changed() and plan.diff() == ""
    assert apply(paths, plan) == []
    assert all_files(paths) == before and backups_of(paths.user_config) == backups


def test_a_new_code_for_an_alias_replaces_its_block_and_pin_only(paths: Paths) -> None:
    connect(paths, "other", KEY_B, port=7)
    connect(paths, key=KEY_A, port=1)
    user = paths.user_config.read_bytes()
    connect(paths, key=KEY_B, port=2)
    assert paths.user_config.read_bytes() == user
    assert paths.known_hosts.read_text() == f"colabssh-other {KEY_B}\ncolabssh-colab {KEY_B}\n"
    assert ssh_g(paths.user_config)["port"] == ["2"] and ssh_g(paths.user_config, "other")["port"] == ["7"]
    assert [x for x in paths.config.read_text().splitlines() if x.startswith("Host ")] == ["Host other", "Host colab"]


# ------------------------------------------------------------------------------------ markers (A5)


def _include(paths: Paths) -> bytes:
    return f"Include {paths.config}\n".encode()


@pytest.mark.parametrize("shape, lines_named", [
    ("duplicate start", "start marker (line 1, line 3)"),
    ("duplicate end", "end marker (line 3, line 5)"),
    ("end without start", "line 2"),
    ("start without end", "line 2"),
    ("end before start", "line 1, line 3"),
])
def test_malformed_markers_are_refused_and_nothing_is_written(paths: Paths, shape: str, lines_named: str) -> None:
    inc = _include(paths)
    data = {
        "duplicate start": BEGIN + b"\n" + inc + BEGIN + b"\n" + END + b"\n",
        "duplicate end": BEGIN + b"\n" + inc + END + b"\nHost a\n" + END + b"\n",
        "end without start": b"Host a\n" + END + b"\n",
        "start without end": b"Host a\n" + BEGIN + b"\n" + inc,
        "end before start": END + b"\n" + inc + BEGIN + b"\n",
    }[shape]
    user_config(paths, data)
    before = all_files(paths)
    for action in (lambda: plan_connect(paths, entry(paths), KEY_A),
                   lambda: plan_forget(paths, "colab")):
        with pytest.raises(ColabsshError) as caught:
            action()
        assert caught.value.exit_code == errors.BAD_INPUT
        assert str(paths.user_config) in caught.value.message and lines_named in caught.value.message
    assert all_files(paths) == before and sorted(os.listdir(paths.ssh_dir)) == ["config"]


def test_markers_are_whole_lines_with_crlf_and_spaces_but_not_inside_prose(paths: Paths) -> None:
    prose = b"# mention of " + BEGIN + b" in prose\n"
    user_config(paths, prose + b"  " + BEGIN + b" \t\r\n" + _include(paths) + b"\t" + END + b"\r\nHost a\n")
    plan = plan_connect(paths, entry(paths), KEY_A)
    assert plan.files[paths.user_config][0] == plan.files[paths.user_config][1]  # the block is recognised, kept
    apply(paths, plan)
    forget(paths)
    assert paths.user_config.read_bytes() == prose + b"Host a\n"


def test_a_block_with_lines_colabssh_did_not_write_is_refused(paths: Paths) -> None:
    user_config(paths, BEGIN + b"\n" + _include(paths) + b"Host mine\n  Port 3\n" + END + b"\n")
    before = all_files(paths)
    with pytest.raises(ColabsshError, match="line 3 inside colabssh's managed block") as caught:
        plan_connect(paths, entry(paths), KEY_A)
    assert caught.value.exit_code == errors.BAD_INPUT
    with pytest.raises(ColabsshError, match="line 3"):
        plan_forget(paths, "colab")
    assert all_files(paths) == before


# -------------------------------------------------------------------------------- collisions (A12)


@pytest.mark.parametrize("line", [
    b"Host colab", b"Host foo colab", b"Host col*", b"Host c?lab", b"Match host colab", b"Host=colab",
    b'  host "colab"', b"Match originalhost foo,colab", b"Match exec true host colab", b"Host !foo colab",
    b"Match host COLAB",
])
def test_a_users_own_entry_for_the_alias_is_refused_with_its_line(paths: Paths, line: bytes) -> None:
    original = user_config(paths, b"# mine\nHost a\n  Port 1\n" + line + b"\n  Port 4242\n")
    assert ssh_g(paths.user_config)["port"] == ["4242"]  # OpenSSH agrees that the line applies to colab
    assert find_alias_collision(original, "colab") == (4, line.decode())
    before = all_files(paths)
    with pytest.raises(ColabsshError, match=r"line 4 already names 'colab'") as caught:
        plan_connect(paths, entry(paths), KEY_A)
    assert caught.value.exit_code == errors.BAD_INPUT and "--name" in caught.value.hint
    assert all_files(paths) == before


def test_a_users_entry_below_an_existing_block_is_refused_too(paths: Paths) -> None:
    connect(paths)
    data = paths.user_config.read_bytes() + b"Host colab\n  Port 9\n"
    paths.user_config.write_bytes(data)
    with pytest.raises(ColabsshError, match="line 5 already names"):
        plan_connect(paths, entry(paths), KEY_B)


@pytest.mark.parametrize("line, applies", [
    (b"Host *", True), (b"Host !colab *", False), (b"Host colab-other", False), (b"Host COLAB", False),
    (b"Match all", True), (b"# Host colab", True), (b"Match !host colab", False), (b"Host foo #colab", False),
    (b"Match host *", True), (b"Host * !foo", True),
])
def test_entries_that_do_not_name_the_alias_are_fine(paths: Paths, line: bytes, applies: bool) -> None:
    original = user_config(paths, line + b"\n  Port 4242\n")
    assert (ssh_g(paths.user_config)["port"] == ["4242"]) is applies  # the oracle's view of the line
    assert find_alias_collision(original, "colab") is None
    connect(paths)
    assert_ours_win(paths)


# ---------------------------------------------------------------------------------------- forget


def test_forget_of_an_unknown_alias_is_bad_input(paths: Paths) -> None:
    connect(paths)
    before = all_files(paths)
    with pytest.raises(ColabsshError, match="no session named 'nope'") as caught:
        plan_forget(paths, "nope")
    assert caught.value.exit_code == errors.BAD_INPUT and all_files(paths) == before


def test_forget_keeps_other_sessions_and_the_include(paths: Paths) -> None:
    connect(paths)
    connect(paths, "other", KEY_B, port=7)
    user = paths.user_config.read_bytes()
    forget(paths)
    assert paths.user_config.read_bytes() == user
    assert paths.known_hosts.read_text() == f"colabssh-other {KEY_B}\n"
    assert "Host colab\n" not in paths.config.read_text()
    assert ssh_g(paths.user_config, "other")["port"] == ["7"]
    assert ssh_g(paths.user_config)["hostname"] == ["colab"]  # colab no longer resolves to the runtime


# ------------------------------------------------------------------------------- host key pin (B1)


def test_the_pin_is_the_bare_host_key_alias_and_ssh_keygen_finds_one_line(paths: Paths) -> None:
    paths.root.mkdir(parents=True)
    paths.known_hosts.write_text(f"colabssh-other {KEY_B}\n[colabssh-colab]:12345 {KEY_B}\n")
    connect(paths)
    lines = paths.known_hosts.read_text().splitlines()
    assert f"colabssh-colab {KEY_A}" in lines and f"colabssh-other {KEY_B}" in lines
    found = subprocess.run(["ssh-keygen", "-F", "colabssh-colab", "-f", str(paths.known_hosts)],
                           capture_output=True, text=True, check=True).stdout
    assert [x for x in found.splitlines() if not x.startswith("#")] == [f"colabssh-colab {KEY_A}"]
    assert ssh_g(paths.user_config)["stricthostkeychecking"] == ["true"]


def test_a_hashed_or_listed_pin_for_the_alias_is_replaced(paths: Paths) -> None:
    paths.root.mkdir(parents=True)
    paths.known_hosts.write_text(f"colabssh-colab {KEY_B}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(paths.known_hosts)], capture_output=True, check=True)
    hashed = paths.known_hosts.read_text()
    assert hashed.startswith("|1|") and "colabssh-colab" not in hashed
    paths.known_hosts.write_text(hashed + f"colabssh-colab,alt {KEY_B}\nother {KEY_B}\n")
    connect(paths)
    assert paths.known_hosts.read_text() == f"other {KEY_B}\ncolabssh-colab {KEY_A}\n"


def test_an_unpinned_session_removes_the_old_pin(paths: Paths) -> None:
    connect(paths, "other", KEY_B)
    connect(paths)
    connect(paths, key=None, strict="ask", password_auth=True)
    assert paths.known_hosts.read_text() == f"colabssh-other {KEY_B}\n"
    assert ssh_g(paths.user_config)["stricthostkeychecking"] == ["ask"]


def test_the_written_config_logs_in_to_a_real_sshd_only_with_the_pinned_key(paths: Paths, runtime, tmp_path: Path,
                                                                           isolated_home: Path) -> None:
    """B1 end to end: OpenSSH with the written files reaches the runtime's sshd; a wrong pin is refused."""
    info = runtime.info
    short_root = Path("/tmp") / f"cs{os.getpid()}"
    short_root.mkdir()
    control = control_dir_for(paths, short_root=short_root)
    real = HostEntry(alias="colab", hostname=info.host, port=info.port, user=info.user,
                               identity_file=paths.key, known_hosts=paths.known_hosts,
                               host_key_alias="colabssh-colab", strict_host_key_checking="yes", control_dir=control)
    ssh = ["ssh", "-F", str(paths.user_config), "-o", "BatchMode=yes"]
    try:
        apply(paths, plan_connect(paths, real, info.hostkey))
        ok = subprocess.run([*ssh, "colab", "echo", "in"], capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0 and ok.stdout == "in\n", ok.stderr
        assert subprocess.run([*ssh, "-O", "check", "colab"], capture_output=True, timeout=30).returncode == 0
        subprocess.run([*ssh, "-O", "exit", "colab"], capture_output=True, timeout=30)
        apply(paths, plan_connect(paths, real, KEY_B))
        bad = subprocess.run([*ssh, "colab", "true"], capture_output=True, text=True, timeout=30)
        assert bad.returncode == 255 and "Host key verification failed" in bad.stderr
        assert not (isolated_home / ".ssh" / "known_hosts").exists()
        assert paths.known_hosts.read_text() == f"colabssh-colab {KEY_B}\n"
    finally:
        subprocess.run([*ssh, "-O", "exit", "colab"], capture_output=True, timeout=30)
        shutil.rmtree(short_root, ignore_errors=True)


# ---------------------------------------------------------------------------------- dry-run diff


def _patched_copy(paths: Paths, plan: Plan, copy: Path) -> None:
    diff = plan.diff().encode("utf-8", "surrogateescape")
    assert diff == plan.diff_bytes()
    subprocess.run(["patch", "-s", "-p1", "--binary", "-E"], input=diff, cwd=copy, check=True, capture_output=True)


def test_the_dry_run_diff_applied_with_patch_gives_the_real_result(paths: Paths, tmp_path: Path) -> None:
    """A15: `cd ~ && patch -p1 < diff` makes the very files a real run makes (odd bytes, CRLF, no final EOL)."""
    user_config(paths, b"Host a\r\n  Port 1\r\n# no final newline \xe9")
    paths.root.mkdir()
    paths.known_hosts.write_text(f"old {KEY_B}\n")
    names = (".ssh/config", ".ssh/colabssh/config", ".ssh/colabssh/known_hosts")
    for make_plan in (lambda: plan_connect(paths, entry(paths), KEY_A),
                      lambda: plan_forget(paths, "colab")):
        copy = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(paths.home, copy, symlinks=True)
        plan = make_plan()
        assert b"+++ b/.ssh/config" in plan.diff_bytes() or b"--- a/.ssh/config" in plan.diff_bytes()
        apply(paths, plan)
        _patched_copy(paths, plan, copy)
        for name in names:
            real, patched = paths.home / name, copy / name
            assert (patched.read_bytes() if patched.exists() else None) == (
                real.read_bytes() if real.exists() else None), name


def test_a_dry_run_writes_nothing(paths: Paths, short_dir: Path) -> None:
    plan = plan_connect(paths, entry(paths, control_dir=short_dir / "cm"), KEY_A)
    assert plan.changed() and "+Host colab" in plan.diff()
    assert not paths.ssh_dir.exists() and not (short_dir / "cm").exists()


# ----------------------------------------------------------------------------------- modes (A8/A17)


@pytest.mark.parametrize("umask", [0o000, 0o002, 0o022, 0o077])
def test_modes_are_private_under_any_umask(paths: Paths, umask: int, short_dir: Path) -> None:
    old = os.umask(umask)
    try:
        connect(paths, control_dir=short_dir / "cm")
        mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
        assert (mode(paths.ssh_dir), mode(paths.root), mode(short_dir / "cm")) == (0o700, 0o700, 0o700)
        assert (mode(paths.user_config), mode(paths.config), mode(paths.known_hosts)) == (0o600, 0o600, 0o600)
        assert not paths.lock.exists() and not paths.legacy_lock.exists()  # there only while held
        os.chmod(paths.user_config, 0o644)
        connect(paths, "other", KEY_B)
        forget(paths)
        assert mode(paths.user_config) == 0o644 and backups_of(paths.user_config) == []
        forget(paths, "other")
        assert not paths.user_config.exists()
    finally:
        os.umask(old)


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o400, 0o640])
def test_an_existing_mode_is_kept(paths: Paths, mode: int) -> None:
    user_config(paths, b"Host a\n", mode)
    connect(paths)
    assert stat.S_IMODE(os.stat(paths.user_config).st_mode) == mode
    assert all(stat.S_IMODE(os.stat(b).st_mode) == 0o600 for b in backups_of(paths.user_config))


@pytest.mark.parametrize("mode", [0o664, 0o666, 0o602])
def test_a_config_writable_by_others_is_refused_with_advice(paths: Paths, mode: int) -> None:
    user_config(paths, b"Host a\n", mode)
    before = all_files(paths)
    with pytest.raises(ColabsshError, match="writable by group or others") as caught:
        connect(paths)
    assert "chmod go-w" in caught.value.hint and caught.value.exit_code == errors.BAD_INPUT
    assert all_files(paths) == before and not paths.config.exists()


def test_running_on_another_users_home_is_refused(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sudo colabssh` would leave root-owned files that the user's ssh rejects."""
    user_config(paths, b"Host a\n")
    owner = os.stat(paths.ssh_dir).st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    with pytest.raises(ColabsshError, match="belongs to another user") as caught:
        connect(paths)
    monkeypatch.undo()
    assert "sudo" in caught.value.hint
    assert paths.user_config.read_bytes() == b"Host a\n" and not paths.config.exists()


# -------------------------------------------------------------------------------- symlinks (A9)


@pytest.mark.parametrize("kind", ["relative", "absolute", "chain"])
def test_a_symlinked_config_stays_a_symlink(paths: Paths, tmp_path: Path, kind: str) -> None:
    dotfiles = paths.home / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "ssh_config"
    target.write_bytes(b"Host a\n  Port 1\n")
    os.chmod(target, 0o640)
    paths.ssh_dir.mkdir(mode=0o700)
    if kind == "relative":
        paths.user_config.symlink_to("../dotfiles/ssh_config")
    elif kind == "absolute":
        paths.user_config.symlink_to(target)
    else:
        (dotfiles / "middle").symlink_to("ssh_config")
        paths.user_config.symlink_to(dotfiles / "middle")
    link = os.readlink(paths.user_config)
    connect(paths)
    assert os.path.islink(paths.user_config) and os.readlink(paths.user_config) == link
    assert target.read_bytes().startswith(BEGIN) and target.read_bytes().endswith(b"\nHost a\n  Port 1\n")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert_ours_win(paths)
    forget(paths)
    assert os.path.islink(paths.user_config) and target.read_bytes() == b"Host a\n  Port 1\n"
    assert [p.name for p in dotfiles.iterdir() if "colabssh" in p.name] == []


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_a_dangling_or_looping_symlink_is_refused(paths: Paths, kind: str) -> None:
    paths.ssh_dir.mkdir(mode=0o700)
    if kind == "dangling":
        paths.user_config.symlink_to(paths.home / "gone" / "ssh_config")
    else:
        (paths.ssh_dir / "other").symlink_to("config")
        paths.user_config.symlink_to("other")
    link = os.readlink(paths.user_config)
    with pytest.raises(ColabsshError, match="does not exist" if kind == "dangling" else "loop") as caught:
        connect(paths)
    assert caught.value.exit_code == errors.BAD_INPUT
    assert os.readlink(paths.user_config) == link and not paths.config.exists() and not paths.known_hosts.exists()


# ------------------------------------------------------------------------------ read errors (A7)


def test_a_config_that_is_a_directory_is_refused_not_treated_as_empty(paths: Paths) -> None:
    paths.user_config.mkdir(parents=True)
    with pytest.raises(ColabsshError, match="is a directory") as caught:
        connect(paths)
    assert caught.value.exit_code == errors.BAD_INPUT
    assert paths.user_config.is_dir() and not paths.config.exists()


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied"), OSError(5, "Input/output error")])
def test_an_unreadable_config_is_refused_not_treated_as_empty(paths: Paths, monkeypatch: pytest.MonkeyPatch,
                                                              error: OSError) -> None:
    user_config(paths, b"Host a\n")
    real_open = os.open

    def failing_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.fspath(path) == str(paths.user_config):
            raise error
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", failing_open)
    with pytest.raises(ColabsshError, match=f"cannot read {paths.user_config}: {error.strerror}"):
        connect(paths)
    monkeypatch.undo()
    assert paths.user_config.read_bytes() == b"Host a\n" and not paths.config.exists()


# ---------------------------------------------------------------------------------- backups (A14)


def test_one_backup_per_run_that_changes_the_users_config_and_none_on_a_no_op(paths: Paths) -> None:
    original = user_config(paths, b"Host a\n")
    written = connect(paths)
    first = paths.user_config.read_bytes()
    assert original_of(paths.user_config) in written and backups_of(paths.user_config) == []
    assert original_of(paths.user_config).read_bytes() == original
    connect(paths)
    connect(paths, "other", KEY_B)
    forget(paths)
    assert backups_of(paths.user_config) == []  # the config did not change: no backup
    written = forget(paths, "other")
    backups = kept_backups(paths.user_config)
    assert [b.read_bytes() for b in backups] == [original, first]
    assert backups[1] in written
    assert all(stat.S_IMODE(os.stat(b).st_mode) == 0o600 for b in backups)


def test_a_backup_never_overwrites_an_existing_one(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    import colabssh_cli.sshconfig.backups as backups

    class Frozen:
        @staticmethod
        def now(tz: object) -> object:
            from datetime import datetime, timezone

            return datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    monkeypatch.setattr(backups, "datetime", Frozen)
    user_config(paths, b"Host a\n")
    stamp = paths.user_config.name + ".colabssh-bak-20300102T030405000000Z"
    paths.user_config.with_name(stamp).write_bytes(b"# the backup of an earlier run\n")
    for _ in range(3):
        connect(paths)
        with_block = paths.user_config.read_bytes()
        forget(paths)
    # the earlier run's backup (the oldest: it became the original) was never written over; the latest is the
    # config before the last forget, under a name of its own
    assert [b.read_bytes() for b in kept_backups(paths.user_config)] == [b"# the backup of an earlier run\n",
                                                                          with_block]
    assert [b.name for b in backups_of(paths.user_config)] == [stamp + "-2"]


def test_no_backup_of_a_config_that_did_not_exist(paths: Paths) -> None:
    connect(paths)
    assert backups_of(paths.user_config) == [] and leftovers(paths) == []
