"""Helpers for the runtime tests: the stand-ins' environment, ssh with an explicit config, /proc scans.

ssh reads ``~`` from the password database, not from $HOME, so every ssh here gets ``-F /dev/null``
and absolute paths: nothing of the real user's ~/.ssh is read or written.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from colab_bootstrap import conncode

REPO = Path(__file__).resolve().parent.parent  # the checkout
STANDINS = Path(__file__).parent / "standins"
FAKE_NGROK = STANDINS / "ngrok"
FAKE_CLOUDFLARED = STANDINS / "cloudflared"
TOKEN = "2fAkEtOkEn0123456789_abcdefGHIJKLmnopQRSTuvwx"  # the shape of an ngrok authtoken


def client_key_path(home: Path) -> Path:
    """colabssh's own client key in the temp HOME (the conftest fixture `client_key` makes it)."""
    return home / ".ssh" / "colabssh" / "id_ed25519"


def new_key(folder: Path, name: str = "other_key") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def ssh_argv(info: conncode.ConnectionInfo, key: Path, *options: str, pin: Path | None = None) -> list[str]:
    """ssh to the runtime a code describes, with the code's host key pinned when ``pin`` (a file) is given."""
    argv = ["ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "LogLevel=ERROR",
            "-o", "GlobalKnownHostsFile=/dev/null", "-p", str(info.port), "-l", info.user]
    if pin is not None:
        pin.write_text(f"colabssh-test {info.hostkey}\n")
        argv += ["-o", "HostKeyAlias=colabssh-test", "-o", f"UserKnownHostsFile={pin}",
                 "-o", "StrictHostKeyChecking=yes"]
    else:
        argv += ["-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no"]
    return [*argv, *options, info.host]


def ssh(info: conncode.ConnectionInfo, key: Path, command: str, *options: str, pin: Path | None = None,
        timeout: float = 30, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ssh_argv(info, key, *options, pin=pin), command], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=env)


def path_with_standins(*first: Path) -> str:
    return os.pathsep.join([*(str(p) for p in first), str(STANDINS), os.environ.get("PATH", "")])


def ngrok_env(tmp: Path, token: str | None = TOKEN, **extra: str) -> dict[str, str]:
    """The cell's environment for the ngrok tunnel: pyngrok starts the stand-in agent."""
    env = {"PYNGROK_NGROK_PATH": str(FAKE_NGROK), "FAKE_NGROK_RECORD": str(tmp / "ngrok-record.jsonl"),
           "COLABSSH_TUNNEL": "ngrok", "XDG_CONFIG_HOME": str(tmp / "xdg")}
    if token is not None:
        env["NGROK_AUTHTOKEN"] = token
    env.update(extra)
    return env


def ngrok_records(tmp: Path) -> list[dict]:
    path = tmp / "ngrok-record.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def colab_env(tmp: Path, secrets: dict[str, str | None] | None = None, **extra: str) -> dict[str, str]:
    """The cell's environment as on Colab: google.colab importable, its Secrets and Drive faked."""
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(STANDINS), os.environ.get("PYTHONPATH", "")) if p),
           "FAKE_COLAB_ROOT": str(tmp / "google-account")}
    if secrets is not None:
        path = tmp / "colab-secrets.json"
        path.write_text(json.dumps(secrets))
        env["FAKE_COLAB_SECRETS"] = str(path)
    env.update(extra)
    return env


def processes() -> dict[int, list[str]]:
    """Every process's argv, by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if raw and state != "Z":
            found[int(entry.name)] = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    return found


def pids_with(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker`` (sshd rewrites its argv into one title)."""
    return sorted(pid for pid, argv in processes().items() if marker in " ".join(argv))


def sshd_listeners(state: Path) -> list[int]:
    """The listening sshd processes of the runtime whose state folder is ``state`` (not per-connection ones)."""
    return [pid for pid in pids_with(str(state / "sshd_config")) if "-R" not in processes().get(pid, [])]


def alive(pid: int) -> bool:
    return pid in processes()


def wait_until(predicate, timeout: float = 15.0, what: str = "the condition") -> None:
    """Poll a condition that a process's exit makes true (there is no line or socket to wait on)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def assert_clean_failure(output: str, *secrets: str) -> None:
    """One explained error, no traceback, no secret."""
    assert "colabssh: error:" in output, output
    assert "Traceback" not in output, output
    for secret in secrets:
        assert secret not in output
