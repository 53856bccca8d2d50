"""The whole journey as a user walks it, through the stand-in ngrok agent and again through the stand-in
cloudflared: the cell that `colabssh bootstrap` prints runs, `colabssh connect CODE` opens the editor (the
stand-in `code` records its argv), OpenSSH's `ssh colab CMD` runs a command, `colabssh sync` copies the content
root into the Drive folder, `colabssh demo` passes on the CPU, `colabssh doctor` finds nothing wrong, and
`colabssh forget colab` gives ~/.ssh/config back byte for byte.

Every colabssh step is the installed command in a process of its own, as a user runs it; HOME is the test's
temp folder and OpenSSH always gets ``-F`` (it finds ~ through the password database, not $HOME).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.connection.test_flow_e2e import close_masters_after  # noqa: F401  (fixture)
from tests.fakes import STANDINS, ngrok_env, ngrok_records, path_with_standins

COLABSSH = str(Path(sys.executable).with_name("colabssh"))
USER_CONFIG = (b"# my own settings\r\n"
               b"Host github.com\r\n"
               b"  User git\r\n"
               b"  IdentityFile ~/.ssh/id_github\r\n"
               b"\r\n"
               b"Host *\r\n"
               b"  ServerAliveInterval 60\r\n")
SAMPLES = {"project/train.py": "import torch\nprint(torch.__version__)\n", "notes/ideas ü.txt": "non-ASCII too\n"}


@dataclass
class Laptop:
    home: Path
    env: dict[str, str]  # for colabssh and ssh on the laptop
    code_log: Path

    def colabssh(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([COLABSSH, *args], capture_output=True, text=True, env=self.env,
                              stdin=subprocess.DEVNULL, timeout=timeout)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def ssh(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ssh", "-F", str(self.home / ".ssh" / "config"), *args], capture_output=True,
                              text=True, env=self.env, stdin=subprocess.DEVNULL, timeout=60)

    def editor_calls(self) -> list[list[str]]:
        if not self.code_log.exists():
            return []
        return [json.loads(line)["argv"] for line in self.code_log.read_text().splitlines()]


@pytest.fixture
def laptop(isolated_home: Path, tmp_path: Path) -> Laptop:
    """A user's machine: a ~/.ssh/config of their own (CRLF lines), the editor CLI and cloudflared on PATH."""
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "config").write_bytes(USER_CONFIG)
    (ssh_dir / "config").chmod(0o600)
    bin_dir = tmp_path / "laptop-bin"
    bin_dir.mkdir()
    (bin_dir / "code").symlink_to(STANDINS / "code")
    (bin_dir / "cloudflared").symlink_to(STANDINS / "cloudflared")
    (tmp_path / "cloudflare-edge").mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "FAKE_CODE_LOG": str(tmp_path / "code-calls.jsonl"),
           "FAKE_CLOUDFLARED_DIR": str(tmp_path / "cloudflare-edge")}
    return Laptop(isolated_home, env, tmp_path / "code-calls.jsonl")


def runtime_env(tunnel: str, tmp_path: Path) -> dict[str, str]:
    """The Colab side's environment: the stand-in ngrok agent (through pyngrok), or the stand-in cloudflared."""
    if tunnel == "ngrok":
        return ngrok_env(tmp_path)
    return {"COLABSSH_TUNNEL": "cloudflared", "PATH": path_with_standins(),
            "FAKE_CLOUDFLARED_DIR": str(tmp_path / "cloudflare-edge")}


@pytest.mark.parametrize("tunnel", ["ngrok", "cloudflared"])
def test_the_whole_journey(tunnel, laptop, start_runtime, tmp_path):
    # 1. the cell, exactly as `colabssh bootstrap` prints it, runs on the "runtime"
    printed = laptop.colabssh("bootstrap", "--tunnel", tunnel)
    assert printed.returncode == 0, printed.stderr
    cell = tmp_path / "pasted-cell.py"
    cell.write_text(printed.stdout)
    runtime = start_runtime(cell=cell, extra_env=runtime_env(tunnel, tmp_path))
    info = runtime.info
    assert info.tunnel == tunnel
    if tunnel == "ngrok":  # pyngrok started the stand-in agent, and the code names its public address
        assert len(ngrok_records(tmp_path)) == 1 and info.host == "localhost"
    else:
        assert info.host.endswith(".trycloudflare.com") and info.port == 22
    for name, text in SAMPLES.items():
        (runtime.content / name).parent.mkdir(parents=True, exist_ok=True)
        (runtime.content / name).write_text(text)

    # 2. colabssh connect CODE: the config is written, the login checked, the editor opened on the content root
    connected = laptop.colabssh("connect", runtime.code)
    assert connected.returncode == 0, connected.stderr
    assert "ssh colab works (checked with OpenSSH)" in connected.stdout
    assert laptop.editor_calls() == [["--list-extensions"],
                                     ["--folder-uri", f"vscode-remote://ssh-remote+colab{runtime.content}"]]
    assert info.content == str(runtime.content)

    # 3. plain OpenSSH through the user's config, as VS Code runs it
    remote = laptop.ssh("colab", f"cat '{runtime.content}/project/train.py' && echo \"user=$(id -un)\"")
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == SAMPLES["project/train.py"] + f"user={info.user}\n"

    # 4. colabssh sync: the content root arrives in the Drive folder
    synced = laptop.colabssh("sync", "--json")
    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout)["exit"] == 0
    backup = runtime.drive / "colabssh" / "content"
    assert {name: (backup / name).read_text() for name in SAMPLES} == SAMPLES

    # 5. colabssh demo on the runtime's CPU
    demo = laptop.colabssh("demo", "--json")
    assert demo.returncode == 0, demo.stderr
    statuses = [check["status"] for check in json.loads(demo.stdout)["checks"]]
    assert "failed" not in statuses and statuses.count("passed") >= 5

    # 6. colabssh doctor: nothing to fix (and cloudflared is checked for the session that needs it)
    doctor = laptop.colabssh("doctor", "--json")
    assert doctor.returncode == 0, doctor.stdout
    checks = {check["name"]: check["status"] for check in json.loads(doctor.stdout)["checks"]}
    assert checks["reach colab"] == "ok" and checks["ssh -G colab"] == "ok"
    assert ("cloudflared (colab)" in checks) == (tunnel == "cloudflared")

    # 7. colabssh forget colab: ~/.ssh/config is the user's again, byte for byte; colabssh's files are gone
    forgot = laptop.colabssh("forget", "colab")
    assert forgot.returncode == 0, forgot.stderr
    assert (laptop.home / ".ssh" / "config").read_bytes() == USER_CONFIG
    own = laptop.home / ".ssh" / "colabssh"
    assert not any((own / name).exists() for name in ("config", "known_hosts", "sessions.json"))
    assert laptop.ssh("-G", "colab").stdout.splitlines()[0] == "host colab"  # ssh knows no colab block now
    assert "hostkeyalias colabssh-colab" not in laptop.ssh("-G", "colab").stdout
