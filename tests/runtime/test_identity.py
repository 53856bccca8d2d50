"""The runtime keeps its identity (issue 13): a recycled runtime (new state folder, same Drive) presents the host
key kept on Drive, and writes its current connection code there. The key is asked from the real sshd
(ssh-keyscan), never read from files; a damaged key on Drive is left as it is and named in one warning."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from colab_bootstrap import conncode
from colab_bootstrap.drive_layout import CODE_NAME, HOST_KEY_NAME, runtime_folder
from tests.fakes import client_key_path, new_key, ssh

WARNING = "colabssh: warning: the host key kept on Drive in"


def presented_key(info: conncode.ConnectionInfo) -> str:
    """The ed25519 host key the sshd behind INFO presents, as 'ssh-ed25519 BASE64'."""
    scan = subprocess.run(["ssh-keyscan", "-T", "15", "-t", "ed25519", "-p", str(info.port), info.host],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    lines = [line.split() for line in scan.stdout.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1, (scan.stdout, scan.stderr)
    return f"{lines[0][1]} {lines[0][2]}"


def snapshot(folder: Path) -> dict[str, tuple[str, bytes, int]]:
    """Every entry below FOLDER: its kind, its bytes (regular files and link targets) and its mtime."""
    found = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            found[str(path)] = ("link", os.readlink(path).encode(), info.st_mtime_ns)
        elif path.is_file():
            found[str(path)] = ("file", path.read_bytes(), info.st_mtime_ns)
        else:
            found[str(path)] = ("other", b"", info.st_mtime_ns)
    return found


def _line(key: Path) -> str:
    return " ".join(key.with_suffix(".pub").read_text().split()[:2])


@pytest.fixture
def drive(tmp_path: Path) -> Path:
    folder = tmp_path / "shared-drive"
    folder.mkdir()
    return folder


@pytest.fixture
def kept(drive: Path, client_key: str) -> Path:
    """This laptop key's runtime folder on the shared Drive."""
    return runtime_folder(drive, client_key)


def test_a_recycled_runtime_presents_the_kept_host_key_and_its_code_replaces_the_last(
        start_runtime, drive, kept, tmp_path, isolated_home):
    env = {"COLABSSH_DRIVE": str(drive)}
    first = start_runtime("local", env, where=tmp_path / "a")
    key = presented_key(first.info)
    assert key == first.info.hostkey
    assert f"host key: new; kept on Drive for later runtimes ({kept})" in first.output
    assert _line(kept / HOST_KEY_NAME) == key
    assert conncode.decode((kept / CODE_NAME).read_text().strip()) == first.info
    assert (kept / CODE_NAME).read_text() == first.code + "\n"
    kept_before = snapshot(kept)
    first.stop()

    state = tmp_path / "b" / "state"  # a new runtime's state folder, with a key of its own already there
    state.mkdir(parents=True, mode=0o700)
    own = new_key(state, HOST_KEY_NAME)
    assert _line(own) != key
    second = start_runtime("local", env, where=tmp_path / "b")
    assert presented_key(second.info) == key == second.info.hostkey
    assert f"host key: the one kept on Drive ({kept}): the same as this notebook's earlier runtimes" in second.output
    assert WARNING not in second.output
    assert (state / HOST_KEY_NAME).stat().st_mode & 0o777 == 0o600
    result = ssh(second.info, client_key_path(isolated_home), "echo back", pin=tmp_path / "pin")
    assert result.returncode == 0 and result.stdout == "back\n", result.stderr
    # the code on Drive is the new runtime's, there before its connect line; the kept key is untouched
    assert (kept / CODE_NAME).read_text() == second.code + "\n"
    assert conncode.decode(second.code) == second.info
    lines = second.output.splitlines()
    saved = next(i for i, line in enumerate(lines) if line.startswith("connection code saved to Drive: "))
    assert saved < lines.index(f"colabssh connect {second.code}")
    assert f"{kept / CODE_NAME} (a laptop with `connect --drive-folder` finds it)" in lines[saved]
    assert {k: v for k, v in snapshot(kept).items() if CODE_NAME not in k} == \
        {k: v for k, v in kept_before.items() if CODE_NAME not in k}


def test_fresh_host_key_gives_a_new_key_and_leaves_the_kept_one_alone(start_runtime, drive, kept, tmp_path):
    env = {"COLABSSH_DRIVE": str(drive)}
    first = start_runtime("local", env, where=tmp_path / "a")
    first.stop()
    before = snapshot(kept)
    fresh = start_runtime("local", {**env, "COLABSSH_FRESH_HOST_KEY": "1"}, where=tmp_path / "b")
    assert presented_key(fresh.info) == fresh.info.hostkey != first.info.hostkey
    assert "host key: this runtime's own (fresh_host_key)" in fresh.output
    after = snapshot(kept)
    assert {k: v for k, v in after.items() if CODE_NAME not in k} == \
        {k: v for k, v in before.items() if CODE_NAME not in k}
    assert (kept / CODE_NAME).read_text() == fresh.code + "\n"  # the laptop tells the runtimes apart by host key


def _truncated(kept: Path, keys: Path) -> None:
    key = new_key(keys, "kept")
    (kept / HOST_KEY_NAME).write_bytes(key.read_bytes()[:120])
    (kept / (HOST_KEY_NAME + ".pub")).write_bytes(key.with_suffix(".pub").read_bytes())


def _mismatched(kept: Path, keys: Path) -> None:
    (kept / HOST_KEY_NAME).write_bytes(new_key(keys, "one").read_bytes())
    (kept / (HOST_KEY_NAME + ".pub")).write_bytes(new_key(keys, "two").with_suffix(".pub").read_bytes())


def _half_written(kept: Path, keys: Path) -> None:
    (kept / (HOST_KEY_NAME + ".pub")).write_bytes(new_key(keys, "kept").with_suffix(".pub").read_bytes())


def _fifo(kept: Path, keys: Path) -> None:
    os.mkfifo(kept / HOST_KEY_NAME)
    (kept / (HOST_KEY_NAME + ".pub")).write_bytes(new_key(keys, "kept").with_suffix(".pub").read_bytes())


def _symlink(kept: Path, keys: Path) -> None:
    """A link to a good key elsewhere: still refused (never followed)."""
    key = new_key(keys, "kept")
    (kept / HOST_KEY_NAME).symlink_to(key)
    (kept / (HOST_KEY_NAME + ".pub")).write_bytes(key.with_suffix(".pub").read_bytes())


def _folder(kept: Path, keys: Path) -> None:
    (kept / HOST_KEY_NAME).mkdir()
    (kept / (HOST_KEY_NAME + ".pub")).write_bytes(new_key(keys, "kept").with_suffix(".pub").read_bytes())


def _oversize(kept: Path, keys: Path) -> None:
    key = new_key(keys, "kept")
    (kept / HOST_KEY_NAME).write_bytes(key.read_bytes() + b"\n" * 20000)
    (kept / (HOST_KEY_NAME + ".pub")).write_bytes(key.with_suffix(".pub").read_bytes())


@pytest.mark.parametrize("damage, reason", [
    (_truncated, "is not a readable private key whose public half is the .pub"),
    (_mismatched, "is not a readable private key whose public half is the .pub"),
    (_half_written, f"{HOST_KEY_NAME} is missing"),
    (_fifo, "is a FIFO (named pipe)"),
    (_symlink, "is a symbolic link"),
    (_folder, "is a folder"),
    (_oversize, "too big for a host key"),
], ids=["truncated", "mismatched", "half-written", "fifo", "symlink", "folder", "oversize"])
def test_a_damaged_kept_key_is_named_left_alone_and_the_runtime_uses_its_own(start_runtime, drive, kept, tmp_path,
                                                                             damage, reason):
    kept.mkdir(parents=True)
    damage(kept, tmp_path / "keys")
    before = snapshot(kept)
    running = start_runtime("local", {"COLABSSH_DRIVE": str(drive)}, where=tmp_path / "a")
    warnings = [line for line in running.output.splitlines() if line.startswith(WARNING)]
    assert len(warnings) == 1, running.output
    assert f"in {kept} cannot be used (" in warnings[0] and reason in warnings[0]
    assert f"remove {kept / HOST_KEY_NAME}*" in warnings[0] and "COLABSSH_FRESH_HOST_KEY=1" in warnings[0]
    assert "host key: new" not in running.output and "host key: the one" not in running.output
    state_key = running.state / HOST_KEY_NAME
    assert presented_key(running.info) == running.info.hostkey == _line(state_key)
    assert running.info.hostkey not in " ".join(v[1].decode(errors="replace") for v in before.values())
    after = snapshot(kept)
    assert {k: v for k, v in after.items() if CODE_NAME not in k} == before  # not overwritten, not added to
    assert (kept / CODE_NAME).read_text() == running.code + "\n"


def test_a_code_that_cannot_be_saved_is_one_warning(start_runtime, drive, kept, tmp_path):
    kept.mkdir(parents=True)
    (kept / CODE_NAME).mkdir()  # something in the way that no rename replaces
    running = start_runtime("local", {"COLABSSH_DRIVE": str(drive)}, where=tmp_path / "a")
    warnings = [line for line in running.output.splitlines() if "could not save the connection code" in line]
    assert len(warnings) == 1 and str(kept / CODE_NAME) in warnings[0], running.output
    assert "connection code saved" not in running.output and "Traceback" not in running.output
    assert presented_key(running.info) == running.info.hostkey
    assert [p.name for p in kept.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_without_drive_nothing_changes(start_runtime, tmp_path):
    running = start_runtime("local", {"COLABSSH_DRIVE": ""}, where=tmp_path / "a")
    assert "host key:" not in running.output and "connection code saved" not in running.output
    assert WARNING not in running.output
    assert presented_key(running.info) == running.info.hostkey == _line(running.state / HOST_KEY_NAME)
    assert list((tmp_path / "a" / "drive").iterdir()) == []
