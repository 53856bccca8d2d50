"""Where things live on the runtime, from the cell's options and the environment.

Off Colab (for trying colabssh out, and for tests) these variables make the cell
work on any Linux machine with OpenSSH's sshd:

- ``COLABSSH_CONTENT``: the content root (default ``/content``)
- ``COLABSSH_DRIVE``: an existing folder to use as Drive (default: mount Drive,
  then ``/content/drive/MyDrive``)
- ``COLABSSH_PORT``: sshd's port on 127.0.0.1 (default 2222; 0: the port the state folder's
  earlier run used, else any free one)
- ``COLABSSH_STATE``: the runtime's state folder (default ``~/.colabssh-runtime``)
- ``COLABSSH_TUNNEL``: overrides the tunnel kind (ngrok, cloudflared, local)
- ``COLABSSH_PROFILE_D``: where the login-shell snippet goes (default
  ``/etc/profile.d`` when running as root; empty to skip it)
- ``COLABSSH_SSHD``: the sshd program to use (a path, or a name looked up on PATH);
  when set, colabssh never falls back to /usr/sbin or installs openssh-server
- ``COLABSSH_HEARTBEAT``: seconds between health checks while serving (default 60)
- ``COLABSSH_SYNC_EVERY``: overrides the cell's ``sync_every`` option (seconds between
  automatic backups to Drive; 0 = off)
- ``COLABSSH_HOME``: the home whose editor-server folders (``.vscode-server`` ...) are kept on Drive
  (default: the login user's home, from the password database)
- ``COLABSSH_RESTORE``: 0 = do not restore an empty content root (and the editor folders) from Drive
  (overrides the cell's ``restore`` option; 1 = restore)
- ``COLABSSH_FRESH_HOST_KEY``: 1 = a host key of this runtime's own, not the one kept on Drive
  (overrides the cell's ``fresh_host_key`` option; 0 = the kept one)

Where a variable and a cell option name the same thing (the tunnel, sync_every, restore, fresh_host_key), the
variable wins, so one saved cell can be steered from the environment.
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import ship
from .errors import BootstrapError

RUNTIME_TUNNELS = ("ngrok", "cloudflared", "local")
DEFAULT_PORT = 2222
DEFAULT_HEARTBEAT = 60.0


def state_folder(environ: Mapping[str, str]) -> Path:
    """COLABSSH_STATE, else ~/.colabssh-runtime (``ship.state_path``: BOOT carries that one copy of the rule)."""
    return Path(ship.state_path(environ))


def profile_folder(environ: Mapping[str, str]) -> Path | None:
    """COLABSSH_PROFILE_D (empty: none), else /etc/profile.d when running as root, else none."""
    text = environ.get("COLABSSH_PROFILE_D")
    if text is None:
        return Path("/etc/profile.d") if os.geteuid() == 0 else None
    return Path(text) if text else None


def home_folder(environ: Mapping[str, str]) -> Path:
    """COLABSSH_HOME, else the login user's home from the password database (not $HOME: sshd's sessions use that)."""
    text = environ.get("COLABSSH_HOME")
    if text:
        return Path(text).absolute()
    try:
        return Path(pwd.getpwuid(os.geteuid()).pw_dir)
    except KeyError:
        return Path(environ.get("HOME") or "/root").absolute()


def switch(environ: Mapping[str, str], variable: str, option: object, default: bool) -> bool:
    """A yes/no setting: the variable (1/0, true/false, yes/no) wins over the cell's option."""
    text = environ.get(variable, "")
    if text:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise BootstrapError(f"{variable}={text!r} is neither 1 nor 0",
                             f"use {variable}=1 or {variable}=0, or unset it")
    return default if option is None else bool(option)


@dataclass(frozen=True)
class Settings:
    tunnel: str
    content: Path
    drive_override: Path | None
    port: int
    state: Path
    profile_d: Path | None
    public_key: str  # the key text given to the cell ("" = take it from a secret)
    sync_every: int  # seconds between automatic syncs on the runtime; 0 = off
    sshd: str = ""  # COLABSSH_SSHD: the sshd to use ("" = find it, install it when root)
    heartbeat: float = DEFAULT_HEARTBEAT  # seconds between health checks while serving
    home: Path = Path("/root")  # COLABSSH_HOME: whose editor-server folders are kept on Drive
    restore: bool = True  # restore an empty content root (and missing editor folders) from Drive's backup
    fresh_host_key: bool = False  # True: this runtime's own host key, not the one kept on Drive

    @classmethod
    def from_options(cls, options: Mapping[str, object], environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        tunnel = env.get("COLABSSH_TUNNEL") or str(options.get("tunnel") or "ngrok")
        if tunnel not in RUNTIME_TUNNELS:
            source = "COLABSSH_TUNNEL" if env.get("COLABSSH_TUNNEL") else "the cell's tunnel option"
            raise BootstrapError(f"unknown tunnel kind {tunnel!r} (from {source})",
                                 f"use one of: {', '.join(RUNTIME_TUNNELS)}")
        port_text = env.get("COLABSSH_PORT", str(options.get("port") or DEFAULT_PORT))
        if not re.fullmatch(r"[0-9]{1,5}", port_text) or int(port_text) > 65535:
            raise BootstrapError(f"COLABSSH_PORT={port_text!r} is not a port number",
                                 "use 1-65535, or 0 to pick a free port")
        drive = env.get("COLABSSH_DRIVE")
        every_env = env.get("COLABSSH_SYNC_EVERY")
        every_text = every_env or str(options.get("sync_every") or 0)
        if not re.fullmatch(r"[0-9]{1,7}", every_text):
            source = f"COLABSSH_SYNC_EVERY={every_text!r}" if every_env else f"the cell's sync_every={every_text!r}"
            raise BootstrapError(f"{source} is not a whole number of seconds",
                                 "use e.g. 600 for every ten minutes, or 0 for no automatic backup")
        heartbeat_text = env.get("COLABSSH_HEARTBEAT") or str(DEFAULT_HEARTBEAT)
        if not re.fullmatch(r"[0-9]{1,6}(\.[0-9]{1,3})?", heartbeat_text) or float(heartbeat_text) <= 0:
            raise BootstrapError(f"COLABSSH_HEARTBEAT={heartbeat_text!r} is not a number of seconds",
                                 "use e.g. 60, or unset it")
        return cls(
            tunnel=tunnel,
            content=Path(env.get("COLABSSH_CONTENT") or "/content").absolute(),
            drive_override=Path(drive).absolute() if drive else None,
            port=int(port_text),
            state=state_folder(env),
            profile_d=profile_folder(env),
            public_key=str(options.get("public_key") or ""),
            sync_every=int(every_text),
            sshd=env.get("COLABSSH_SSHD", ""),
            heartbeat=float(heartbeat_text),
            home=home_folder(env),
            restore=switch(env, "COLABSSH_RESTORE", options.get("restore"), True),
            fresh_host_key=switch(env, "COLABSSH_FRESH_HOST_KEY", options.get("fresh_host_key"), False),
        )
