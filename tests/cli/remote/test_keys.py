"""colabssh's client key (keys.py): made once under the lock, never swapped, the user's ~/.ssh left as it is."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from colabssh_cli.app import main
from colabssh_cli.errors import BAD_INPUT
from colabssh_cli.paths import Paths
from colabssh_cli.remote.keys import ensure_client_key

MAKE_KEY = ("import sys\n"
            "from colabssh_cli.remote.keys import ensure_client_key\n"
            "from colabssh_cli.paths import Paths\n"
            "print('ready', flush=True)\n"
            "sys.stdin.read()  # the start signal: every process begins at once\n"
            "print(ensure_client_key(Paths.from_env()))\n")


def test_a_file_where_ssh_keeps_its_folder_is_one_line_not_a_traceback(isolated_home: Path, capsys) -> None:
    (isolated_home / ".ssh").write_text("not a folder\n")
    assert main(["bootstrap", "--tunnel", "local"]) == BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"colabssh: error: {isolated_home / '.ssh'} exists but is not a folder\n"
                            "  hint: move it out of the way\n")
    assert (isolated_home / ".ssh").read_text() == "not a folder\n"


def test_concurrent_runs_agree_on_one_key(isolated_home: Path) -> None:
    """A `colabssh bootstrap` and a `colabssh connect` started together: the cell must authorise the key that
    connect logs in with, so every run reports the one key that ends up on disk."""
    runs = [subprocess.Popen([sys.executable, "-c", MAKE_KEY], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "HOME": str(isolated_home)})
            for _ in range(4)]
    for run in runs:  # every interpreter is up, its imports done, and waits on its stdin
        assert run.stdout is not None and run.stdout.readline() == "ready\n"
    for run in runs:
        assert run.stdin is not None
        run.stdin.close()
    reported = []
    for run in runs:
        assert run.stdout is not None and run.stderr is not None
        out, err = run.stdout.read(), run.stderr.read()
        assert run.wait(timeout=60) == 0, err
        reported.append(out.strip())
    paths = Paths.from_env()
    on_disk = paths.public_key.read_text().strip()
    assert set(reported) == {on_disk} and on_disk.startswith("ssh-ed25519 ")
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(paths.key)], capture_output=True, text=True, check=True)
    assert derived.stdout.split()[:2] == on_disk.split()[:2]  # the public key is the private key's
    assert [p.name for p in paths.root.iterdir() if p.name.startswith(".")] == []  # no scratch left behind


def test_the_key_is_made_once_and_kept(isolated_home: Path) -> None:
    paths = Paths.from_env()
    first = ensure_client_key(paths)
    key_bytes = paths.key.read_bytes()
    assert stat.S_IMODE(paths.key.stat().st_mode) == 0o600
    assert ensure_client_key(paths) == first and paths.key.read_bytes() == key_bytes
    paths.public_key.unlink()  # derived again from the key, never a new key
    assert ensure_client_key(paths).split()[:2] == first.split()[:2]
    assert paths.key.read_bytes() == key_bytes


def test_the_users_ssh_folder_keeps_its_mode(isolated_home: Path) -> None:
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir()
    os.chmod(ssh_dir, 0o755)
    ensure_client_key(Paths.from_env())
    assert stat.S_IMODE(ssh_dir.stat().st_mode) == 0o755  # the user's to set; colabssh's own folder is 0700
    assert stat.S_IMODE((ssh_dir / "colabssh").stat().st_mode) == 0o700
