"""A connect or forget killed at any write, and the next connect/forget/doctor: the stores agree again.

colabssh keeps a session in four places (its Host block, its pinned key, its record in sessions.json, the Include
block in ~/.ssh/config). Here a `connect` or `forget` is SIGKILLed at its 1st, 2nd, ... file-system write (every
one of them, until the command runs to its end), and the next command must leave the four in agreement, no temp
file or journal behind, and `forget` must give back the user's exact bytes. Files a colabssh 0.1 left in
disagreement (no journal then) are repaired the same way, and `doctor` says what it found and did.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from colabssh_cli.app import main
from colabssh_cli.paths import Paths
from colabssh_cli.session import load_sessions
from colabssh_cli.sshconfig import text
from colabssh_cli.sshconfig.plan import block_settings, own_blocks
from colabssh_cli.sshconfig.render import BEGIN_MARKER
from tests.cli.connection.test_flow import INFO
from tests.runtime.test_conncode import base, code_of

pytestmark = pytest.mark.slow  # forks and SIGKILLs a child at every write

USER_CONFIG = b"Host mine\r\n  HostName example.org\r\n# caf\xe9"
CODE_A = code_of(base())
CODE_B = code_of(base(host="1.tcp.ngrok.io", port=2345))
WRITES = ("replace", "rename", "unlink", "remove", "link", "mkdir", "rmdir", "write", "fsync", "fchmod", "chmod",
          "symlink", "truncate", "ftruncate")


def run_killed_at(n: int, argv: list[str]) -> bool:
    """Run `colabssh ARGV` in a forked child that SIGKILLs itself at its N-th write; True if it was killed."""
    pid = os.fork()
    if pid == 0:  # the child: count writes, die at the N-th
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            count = [0]

            def counted(real: Callable[..., Any]) -> Callable[..., Any]:
                def wrapper(*args: Any, **kwargs: Any) -> Any:
                    count[0] += 1
                    if count[0] == n:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return real(*args, **kwargs)
                return wrapper

            real_open = os.open

            def counted_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
                if flags & (os.O_CREAT | os.O_TRUNC):
                    count[0] += 1
                    if count[0] == n:
                        os.kill(os.getpid(), signal.SIGKILL)
                return real_open(path, flags, *args, **kwargs)

            for name in WRITES:
                if hasattr(os, name):
                    setattr(os, name, counted(getattr(os, name)))
            os.open = counted_open  # type: ignore[assignment]
            code = main(argv)
        except BaseException:  # noqa: BLE001 - the child must never return into pytest
            code = 99
        os._exit(code if isinstance(code, int) else 1)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, f"the command failed on its own (exit {os.WEXITSTATUS(status)})"
    return False


def assert_agreement(paths: Paths) -> None:
    """Host blocks, pins, sessions and the Include agree; no temp file, journal or keygen scratch is left."""
    sessions = load_sessions(paths)
    own = paths.config.read_bytes() if paths.config.exists() else b""
    _, blocks = own_blocks(own)
    aliases = {name for name, _ in blocks if name is not None}
    assert aliases == set(sessions), (aliases, set(sessions))
    named = {block_settings(chunk)["hostkeyalias"] for _, chunk in blocks}
    known = paths.known_hosts.read_bytes() if paths.known_hosts.exists() else b""
    pins = {text.known_host_names(line) for line in text.split_lines(known)} - {None}
    assert pins <= named, (pins, named)
    for alias, session in sessions.items():
        if session.hostkey:
            assert f"colabssh-{alias} {session.hostkey}".encode() in known
    user = paths.user_config.read_bytes() if paths.user_config.exists() else b""
    assert (BEGIN_MARKER.encode() in user) == bool(aliases)
    left = [p.name for p in paths.home.rglob("*") if ".colabssh-tmp-" in p.name or p.name.startswith(".keygen-")]
    assert left == [] and not paths.journal.exists()


@pytest.fixture
def start(isolated_home: Path, client_key: str, tmp_path: Path) -> Iterator[Callable[[bool], Paths]]:
    """A fresh home for each kill point: the user's own config (odd bytes), colabssh's key, a session 'other';
    with True, also the session 'colab' (what forget then removes)."""
    paths = Paths.from_env()
    paths.user_config.write_bytes(USER_CONFIG)
    paths.user_config.chmod(0o600)
    assert main(["connect", "--no-open", "--no-check", "--name", "other", CODE_B]) == 0
    pristine = tmp_path / "pristine"
    shutil.copytree(isolated_home, pristine, symlinks=True)
    with_colab = tmp_path / "with-colab"
    assert main(["connect", "--no-open", "--no-check", CODE_A]) == 0
    shutil.copytree(isolated_home, with_colab, symlinks=True)

    def _start(connected: bool) -> Paths:
        shutil.rmtree(isolated_home)
        shutil.copytree(with_colab if connected else pristine, isolated_home, symlinks=True)
        return paths

    yield _start


def own_files(paths: Paths) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (paths.user_config, paths.config, paths.known_hosts, paths.sessions)
            if p.exists()}


def every_kill_point(argv: list[str], start: Callable[[bool], Paths], connected: bool,
                     then: Callable[[Paths, dict[str, bytes]], None]) -> int:
    """Kill ARGV at each write in turn (fresh files each time), then run THEN; return the number of writes."""
    n = 0
    while True:
        n += 1
        paths = start(connected)
        before = own_files(paths)
        killed = run_killed_at(n, argv)
        then(paths, before)
        if not killed:
            return n - 1
        assert n < 500, "no end to the writes"


def test_a_connect_killed_at_any_write_is_healed_by_the_next_connect(start: Callable[[bool], Paths]) -> None:
    def then(paths: Paths, before: dict[str, bytes]) -> None:
        assert main(["connect", "--no-open", "--no-check", CODE_A]) == 0
        assert_agreement(paths)
        assert load_sessions(paths)["colab"].host == INFO.host

    writes = every_kill_point(["connect", "--no-open", "--no-check", CODE_A], start, False, then)
    assert writes > 10  # the journal, the staged temps, the renames, the backup: all were kill points


def test_a_connect_killed_at_any_write_then_forget_gives_the_exact_bytes_back(
        start: Callable[[bool], Paths]) -> None:
    def then(paths: Paths, before: dict[str, bytes]) -> None:
        forgot = main(["forget", "colab"])
        assert forgot in (0, 2)  # 2: killed before it wrote a byte, so there is no 'colab' to forget
        assert own_files(paths) == before  # the user's config byte for byte, and 'other' as it was
        assert_agreement(paths)

    every_kill_point(["connect", "--no-open", "--no-check", CODE_A], start, False, then)


def test_a_forget_killed_at_any_write_is_finished_by_the_next_forget(start: Callable[[bool], Paths],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    pristine: dict[str, bytes] = {}

    def then(paths: Paths, before: dict[str, bytes]) -> None:
        if not pristine:
            pristine.update(own_files(start(False)))
            start(True)  # the files as they were before the kill (the killed run's own leftovers are gone too)
            return
        finished = own_files(paths) == pristine and not paths.journal.exists()  # killed after its last write
        capsys.readouterr()
        if finished:
            assert main(["forget", "colab"]) == 2
        else:
            assert main(["forget", "colab"]) == 0
            assert "forgot colab" in capsys.readouterr().out
        assert own_files(paths) == pristine
        assert_agreement(paths)
        assert main(["forget", "colab"]) == 2  # and now it is gone for good
        assert "no session named 'colab'" in capsys.readouterr().err

    every_kill_point(["forget", "colab"], start, True, then)


@pytest.mark.parametrize("argv", [["connect", "--no-open", "--no-check", CODE_A], ["forget", "colab"]])
def test_doctor_after_a_kill_at_any_write_restores_agreement(argv: list[str], start: Callable[[bool], Paths],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    reported: list[str] = []

    def then(paths: Paths, before: dict[str, bytes]) -> None:
        capsys.readouterr()
        main(["doctor", "--json"])  # it fails anyway: the runtimes of these codes do not answer
        checks = json.loads(capsys.readouterr().out)["checks"]
        reported.extend(c["detail"] for c in checks if c["name"] == "colabssh files" and c["status"] == "warn")
        assert_agreement(paths)

    every_kill_point(argv, start, argv[0] == "forget", then)
    assert any("killed while it wrote" in line for line in reported)  # the journal was found and finished


# ---- files a colabssh before the journal left in disagreement (or edited by hand) --------------------------


def test_an_include_left_without_a_session_file_is_removed_by_forget(start: Callable[[bool], Paths],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """0.1: forget killed after removing colabssh's own config; the Include and the record stayed for good."""
    paths = start(True)
    assert main(["forget", "other"]) == 0
    pristine_user = USER_CONFIG
    paths.config.unlink()
    paths.known_hosts.unlink()
    capsys.readouterr()
    assert main(["forget", "colab"]) == 0
    captured = capsys.readouterr()
    assert "forgot colab" in captured.out and "repaired:" in captured.err
    assert paths.user_config.read_bytes() == pristine_user and not paths.sessions.exists()
    assert main(["forget", "colab"]) == 2


def test_a_host_block_without_a_session_is_repaired_by_connect(start: Callable[[bool], Paths],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """0.1: connect killed after the files, before the record: a block `list`, `status` and `sync` cannot see."""
    paths = start(True)
    sessions = json.loads(paths.sessions.read_text())
    del sessions["sessions"]["colab"]
    paths.sessions.write_text(json.dumps(sessions))
    capsys.readouterr()
    assert main(["connect", "--no-open", "--no-check", "--name", "third", CODE_A]) == 0
    err = capsys.readouterr().err
    assert "repaired: session 'colab': its Host block has no session record" in err
    assert sorted(load_sessions(paths)) == ["other", "third"]
    assert_agreement(paths)


def test_doctor_reports_each_disagreement_with_what_it_did(start: Callable[[bool], Paths],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    paths = start(True)
    (paths.ssh_dir / ".config.colabssh-tmp-abc").write_bytes(b"half")
    (paths.root / ".keygen-xyz").mkdir()
    sessions = json.loads(paths.sessions.read_text())
    sessions["sessions"]["ghost"] = {**sessions["sessions"]["other"], "alias": "ghost"}
    paths.sessions.write_text(json.dumps(sessions))
    with paths.known_hosts.open("ab") as known:
        known.write(f"colabssh-gone {INFO.hostkey}\n".encode())
    capsys.readouterr()
    main(["doctor", "--json"])
    checks = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "colabssh files"]
    details = " | ".join(c["detail"] for c in checks)
    assert all(c["status"] == "warn" and c["fix"] for c in checks)
    assert "2 temporary files" in details
    assert "session 'ghost' has no Host block" in details and "forgot the session" in details
    assert "'colabssh-gone' belongs to no session" in details
    assert_agreement(paths)
    capsys.readouterr()
    main(["doctor", "--json"])
    again = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "colabssh files"]
    assert [c["status"] for c in again] == ["ok"]


def test_a_pin_that_is_not_the_codes_key_is_pinned_again(start: Callable[[bool], Paths],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """0.1: a re-connect killed after known_hosts, before the rest: the new runtime's pin under the old block."""
    paths = start(True)
    other_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1FyTjfMfHjoVPYod1f5p0XG6hHThOCU0OraQgIsw3I"
    paths.known_hosts.write_bytes(paths.known_hosts.read_bytes().replace(INFO.hostkey.encode(), other_key.encode()))
    capsys.readouterr()
    main(["doctor", "--json"])
    checks = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "colabssh files"]
    assert any("pinned the code's key again" in c["detail"] for c in checks)
    assert_agreement(paths)


def test_the_fork_harness_is_not_fooled(start: Callable[[bool], Paths]) -> None:
    """The kill points are real: a connect killed at its first write changes nothing a user can see."""
    paths = start(False)
    before = own_files(paths)
    assert run_killed_at(1, ["connect", "--no-open", "--no-check", CODE_A]) is True
    assert own_files(paths) == before and sys.platform.startswith("linux")


def test_malformed_markers_are_left_to_the_config_check(start: Callable[[bool], Paths],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Two start markers and no session left: repair removes the blocks but does not judge the markers (the
    user's file keeps its bytes); doctor's `ssh config` row names the problem."""
    paths = start(True)
    paths.user_config.write_bytes(BEGIN_MARKER.encode() + b"\n" + paths.user_config.read_bytes())
    paths.sessions.unlink()
    user = paths.user_config.read_bytes()
    capsys.readouterr()
    main(["doctor", "--json"])
    rows = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert rows["ssh config"]["status"] == "fail"
    assert "more than one colabssh start marker" in rows["ssh config"]["detail"]
    assert paths.user_config.read_bytes() == user and not paths.config.exists()
