"""Shared helpers for the ssh-config tests (this module holds no tests of its own)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from colabssh_cli.paths import Paths
from colabssh_cli.sshconfig.apply import apply
from colabssh_cli.sshconfig.plan import plan_connect, plan_forget
from colabssh_cli.sshconfig.render import HostEntry

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1FyTjfMfHjoVPYod1f5p0XG6hHThOCU0OraQgIsw3I"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAjaiRc/3JLHfgToD8/43H7nqWfrTTNmnu227VF5iUlx"


def entry(paths: Paths, alias: str = "colab", *, port: int = 12345, host: str = "0.tcp.ngrok.io",
          user: str = "root", control_dir: Path | None = None, **extra: object) -> HostEntry:
    return HostEntry(alias=alias, hostname=host, port=port, user=user, identity_file=paths.key,
                               known_hosts=paths.known_hosts, host_key_alias=f"colabssh-{alias}",
                               strict_host_key_checking=str(extra.pop("strict", "yes")), control_dir=control_dir,
                               **extra)  # type: ignore[arg-type]


def connect(paths: Paths, alias: str = "colab", key: str | None = KEY_A, **kw: object) -> list[Path]:
    return apply(paths, plan_connect(paths, entry(paths, alias, **kw), key))


def forget(paths: Paths, alias: str = "colab") -> list[Path]:
    return apply(paths, plan_forget(paths, alias))


def ssh_g(config: Path, alias: str = "colab") -> dict[str, list[str]]:
    """`ssh -G -F CONFIG ALIAS` as {option: [values]} (the real OpenSSH parser is the oracle)."""
    result = subprocess.run(["ssh", "-G", "-F", str(config), alias], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=30)
    assert result.returncode == 0, result.stderr
    options: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        name, _, value = line.partition(" ")
        options.setdefault(name, []).append(value)
    return options


def assert_ours_win(paths: Paths, alias: str = "colab", port: int = 12345, host: str = "0.tcp.ngrok.io") -> None:
    got = ssh_g(paths.user_config, alias)
    assert got["hostname"] == [host]
    assert got["port"] == [str(port)]
    assert got["user"] == ["root"]
    assert got["hostkeyalias"] == [f"colabssh-{alias}"]
    assert got["userknownhostsfile"] == [str(paths.known_hosts)]
    assert got["stricthostkeychecking"] == ["true"]
    assert str(paths.key) in got["identityfile"]
    assert got["identitiesonly"] == ["yes"]
    assert got["checkhostip"] == ["no"]


def snapshot(*files: Path) -> dict[Path, tuple[bytes, int, int, int] | None]:
    """Bytes, inode, mtime and mode of each file (None when missing): 'unchanged' means equal snapshots."""
    out: dict[Path, tuple[bytes, int, int, int] | None] = {}
    for path in files:
        try:
            info = os.stat(path)
            out[path] = (path.read_bytes(), info.st_ino, info.st_mtime_ns, info.st_mode)
        except FileNotFoundError:
            out[path] = None
    return out


def leftovers(paths: Paths) -> list[Path]:
    """Temp files colabssh left anywhere under the home."""
    return [p for p in paths.home.rglob("*") if ".colabssh-tmp-" in p.name]
