"""The host key kept on Drive, file by file (no sshd): a copy is made once and never over another runtime's,
the state folder gets the kept pair at 0600, and a temp file is never left on Drive."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from colab_bootstrap.drive_layout import HOST_KEY_NAME
from colab_bootstrap.sshd import identity, prepare_state


def _state(tmp_path: Path, name: str) -> Path:
    state = tmp_path / name
    prepare_state(state)
    return state


def test_the_first_runtime_keeps_its_key_and_the_next_one_takes_it(tmp_path):
    kept = tmp_path / "drive" / "colabssh" / "runtimes" / "0123456789abcdef"
    said: list[str] = []
    first = identity.host_key(_state(tmp_path, "a"), kept, False, said.append)
    second_state = _state(tmp_path, "b")
    second = identity.host_key(second_state, kept, False, said.append)
    assert first == second and first.startswith("ssh-ed25519 ")
    assert said[0].startswith("host key: new; kept on Drive") and said[1].startswith("host key: the one kept")
    assert (second_state / HOST_KEY_NAME).stat().st_mode & 0o777 == 0o600
    assert (second_state / HOST_KEY_NAME).read_bytes() == (kept / HOST_KEY_NAME).read_bytes()
    assert sorted(p.name for p in kept.iterdir()) == [HOST_KEY_NAME, HOST_KEY_NAME + ".pub"]


def test_a_copy_never_replaces_one_another_runtime_kept_meanwhile(tmp_path):
    kept = tmp_path / "kept"
    identity.host_key(_state(tmp_path, "a"), kept, False, lambda line: None)
    before = {p.name: p.read_bytes() for p in kept.iterdir()}
    late = _state(tmp_path, "b")
    identity.host_key(late, tmp_path / "elsewhere", False, lambda line: None)  # B made its own key first
    assert identity._publish(late, kept) is False  # A's pair is there: B's is not written over it
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == before


@pytest.mark.parametrize("refusal", [errno.EPERM, errno.ENOTSUP])
def test_without_hard_links_the_copy_is_renamed_into_place(tmp_path, monkeypatch, refusal):
    """Drive's FUSE mount may have no hard links: the copy is renamed instead, still never over a file."""
    def no_links(source: object, target: object) -> None:
        raise OSError(refusal, os.strerror(refusal))

    monkeypatch.setattr(os, "link", no_links)
    folder = tmp_path / "kept"
    folder.mkdir()
    target = folder / "file"
    assert identity._create_whole(target, b"first", 0o600) is True
    assert identity._create_whole(target, b"second", 0o600) is False
    assert target.read_bytes() == b"first" and [p.name for p in folder.iterdir()] == ["file"]


def test_fresh_host_key_neither_reads_nor_writes_drive(tmp_path):
    kept = tmp_path / "kept"
    said: list[str] = []
    line = identity.host_key(_state(tmp_path, "a"), kept, True, said.append)
    assert line.startswith("ssh-ed25519 ") and not kept.exists()
    assert said == ["host key: this runtime's own (fresh_host_key); the one kept on Drive is neither read nor "
                    "written"]


def test_a_runtime_that_loses_the_race_to_keep_its_key_uses_the_winner(tmp_path, monkeypatch):
    """Two runtimes of one key start at once: the one whose copy comes second presents the first one's key."""
    kept = tmp_path / "kept"
    winner: list[str] = []
    make_own = identity.ensure_host_key

    def own_key_while_another_keeps_its(state: Path) -> str:
        line = make_own(state)
        if state.name == "late":  # the other runtime keeps its pair between this one's look and its copy
            winner.append(identity.host_key(_state(tmp_path, "other"), kept, False, lambda text: None))
        return line

    monkeypatch.setattr(identity, "ensure_host_key", own_key_while_another_keeps_its)
    said: list[str] = []
    state = _state(tmp_path, "late")
    line = identity.host_key(state, kept, False, said.append)
    assert line == winner[0] == " ".join((state / (HOST_KEY_NAME + ".pub")).read_text().split()[:2])
    assert said == [f"host key: the one another runtime just kept on Drive ({kept})"]


def test_a_runtime_killed_between_the_two_files_leaves_a_pair_the_next_runtime_completes(tmp_path):
    """The private key is written first: with its .pub missing (and a temp file of the killed runtime beside it),
    the next runtime derives the .pub, keeps it, and presents the same key; old temp files go."""
    kept = tmp_path / "kept"
    first = identity.host_key(_state(tmp_path, "a"), kept, False, lambda line: None)
    (kept / (HOST_KEY_NAME + ".pub")).unlink()
    stale = kept / f".{HOST_KEY_NAME}.pub.x1y2z3.tmp"
    stale.write_text("half")
    os.utime(stale, (1, 1))
    fresh_temp = kept / f".{HOST_KEY_NAME}.pub.a1b2c3.tmp"  # another runtime's, being written now: left alone
    fresh_temp.write_text("writing")
    said: list[str] = []
    second = identity.host_key(_state(tmp_path, "b"), kept, False, said.append)
    assert second == first and said[0].startswith("host key: the one kept on Drive")
    assert (kept / (HOST_KEY_NAME + ".pub")).read_text().split()[:2] == first.split()
    assert not stale.exists() and fresh_temp.exists()
