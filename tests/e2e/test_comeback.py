"""The comeback, as a user lives it: the runtime is recycled and the laptop needs no new code.

Runtime A runs the form cell of the notebook that `colabssh bootstrap --notebook` writes; the laptop connects
once with `--drive-folder` (the shared folder stands in for Drive, as Google Drive for desktop shows it); files in
/content and a VS Code server folder in the home are synced; A stops. Runtime B starts from the same notebook with
an empty content root, an empty home, a new state folder and a new port, on the same Drive. Then, with no colabssh
command on the laptop, plain `ssh colab` (as VS Code's Reconnect runs it) reaches B: the same host key, /content
and the editor-server folder are back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from colab_bootstrap import conncode
from tests.cli.connection.test_flow_e2e import close_masters_after  # noqa: F401  (fixture)
from tests.fakes import ngrok_env
from tests.notebooks import form_cell_source

COLABSSH = str(Path(sys.executable).with_name("colabssh"))
SERVER = ".vscode-server/bin/0123456789abcdef0123456789abcdef01234567"
PROJECT = {"project/train.py": "print('training')\n", "data/notes ü.txt": "non-ASCII too\n"}
EDITOR = {f"{SERVER}/node": "#!node binary stand-in\n" * 100,
          f"{SERVER}/product.json": '{"commit": "0123456789abcdef"}\n',
          ".vscode-server/extensions/ms-python.python-2026.1.0/package.json": '{"name": "python"}\n'}
REBUILT = (".vscode-server/data/logs/20261203T064000/remoteagent.log",)  # logs stay behind


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


class Laptop:
    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env

    def colabssh(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([COLABSSH, *args], capture_output=True, text=True, env=self.env,
                              stdin=subprocess.DEVNULL, timeout=180)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def ssh(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Plain OpenSSH through the user's own config, as VS Code runs it."""
        return subprocess.run(["ssh", "-F", str(self.home / ".ssh" / "config"), *args], capture_output=True,
                              text=True, env=self.env, stdin=subprocess.DEVNULL, timeout=60)


@pytest.mark.parametrize("tunnel", ["local", "ngrok"])
def test_a_recycled_runtime_is_back_with_no_laptop_command(tunnel, isolated_home, start_runtime, tmp_path,
                                                            close_masters_after):  # noqa: F811
    laptop = Laptop(isolated_home, dict(os.environ))
    drive = tmp_path / "My Drive"  # Google Drive for desktop's folder and the runtimes' Drive, one folder
    drive.mkdir()

    # the notebook, once: its form cell is what Colab runs on every "Run all"
    notebook = tmp_path / "colabssh.ipynb"
    made = laptop.colabssh("bootstrap", "--notebook", str(notebook), "--tunnel", tunnel)
    assert made.returncode == 0, made.stderr
    cell = tmp_path / "form-cell.py"
    cell.write_text(form_cell_source(notebook))

    content, home = tmp_path / "content", tmp_path / "root"  # /content and /root: the same paths on every runtime

    def runtime(name: str):
        where = tmp_path / name  # its own state folder (and port): a new machine
        env = {"COLABSSH_DRIVE": str(drive), "COLABSSH_CONTENT": str(content), "COLABSSH_HOME": str(home),
               "COLABSSH_SYNC_EVERY": "0"}
        if tunnel == "ngrok":
            env.update(ngrok_env(where))
        home.mkdir(exist_ok=True)
        return start_runtime(cell=cell, where=where, extra_env=env)

    # runtime A: connect once, with the Drive folder
    a = runtime("A")
    connected = laptop.colabssh("connect", a.code, "--drive-folder", str(drive), "--no-open")
    assert connected.returncode == 0, connected.stderr
    _write(a.content, PROJECT)
    _write(home, {**EDITOR, **{name: "log\n" for name in REBUILT}})
    synced = laptop.colabssh("sync", "--json")
    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout)["exit"] == 0
    a_key = a.info.hostkey
    a.stop()
    gone = laptop.ssh("colab", "true")
    assert gone.returncode == 255  # A is gone: nothing answers at its address
    told = laptop.colabssh("ssh", "--", "true")  # and colabssh says what the relay found, and what to do
    assert told.returncode == 255, told.stderr  # `colabssh ssh` keeps ssh's own exit status
    assert "no runtime of 'colab' answers" in told.stderr
    assert "run the notebook, or connect the new code" in told.stderr
    recorded = (isolated_home / ".ssh" / "colabssh" / "sessions.json").read_bytes()

    # runtime B: a new machine (empty /content and home, new state and port), the same Drive
    shutil.rmtree(content)
    shutil.rmtree(home)
    b = runtime("B")
    assert (b.info.host, b.info.port) != (a.info.host, a.info.port)
    assert b.info.hostkey == a_key  # the host key kept on Drive: the laptop's pin still holds
    output = b.output
    assert output.index("restor") < output.index("colabssh connect ")  # /content came back before the code
    code_file = next((drive / "colabssh" / "runtimes").glob("*/connect.code"))
    assert conncode.decode(code_file.read_text().strip()) == b.info  # B's address, for the laptop to find

    # no laptop command: plain ssh (VS Code's Reconnect) reaches B
    remote = laptop.ssh("colab", f"cat '{content}/project/train.py' && cat '{content}/data/notes ü.txt' && "
                                 f"ls '{home}/{SERVER}'")
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == PROJECT["project/train.py"] + PROJECT["data/notes ü.txt"] + "node\nproduct.json\n"
    assert {name: (home / name).read_text() for name in EDITOR} == EDITOR  # the server VS Code starts again
    assert not any((home / name).exists() for name in REBUILT)
    assert (isolated_home / ".ssh" / "colabssh" / "sessions.json").read_bytes() == recorded  # nothing rewritten
    status = laptop.colabssh("status", "--json")  # where the relay found the runtime
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["address"] == f"{b.info.host}:{b.info.port}"
    (content / "made-on-b.txt").write_text("new work\n")
    again = laptop.colabssh("sync", "--json")  # and colabssh's own commands ride the same alias to B
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["exit"] == 0
    assert (drive / "colabssh" / "content" / "made-on-b.txt").read_text() == "new work\n"
