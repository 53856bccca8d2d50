"""Where colabssh keeps its files on the laptop.

Everything lives in ``~/.ssh/colabssh/`` (0700): the client key, the ssh config
with one Host block per session, the pinned host keys, the session list and the lock.
Beside ``~/.ssh/config`` colabssh keeps only its backups of that file (sshconfig/backups.py).
``~`` is taken from ``$HOME`` (tests point it at a temp folder); every path
colabssh writes into an ssh config is absolute, because OpenSSH expands ``~``
from the password database, not from ``$HOME``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    home: Path

    @classmethod
    def from_env(cls) -> Paths:
        home = os.environ.get("HOME") or str(Path.home())
        return cls(Path(home).absolute())

    @property
    def ssh_dir(self) -> Path:
        return self.home / ".ssh"

    @property
    def user_config(self) -> Path:
        return self.ssh_dir / "config"

    @property
    def root(self) -> Path:
        return self.ssh_dir / "colabssh"

    @property
    def key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def public_key(self) -> Path:
        return self.root / "id_ed25519.pub"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def sessions(self) -> Path:
        return self.root / "sessions.json"

    @property
    def journal(self) -> Path:
        """A multi-file change in progress (sshconfig_files.Transaction); the next run finishes it."""
        return self.root / "transaction.journal"

    @property
    def lock(self) -> Path:
        """colabssh's lock (sshconfig/lock.py): there only while a run holds it."""
        return self.root / "lock"

    @property
    def legacy_lock(self) -> Path:
        """Where earlier colabssh releases kept the lock: held too while it exists, never made (sshconfig/lock.py)."""
        return self.ssh_dir / ".colabssh.lock"

    @property
    def control_dir(self) -> Path:
        return self.root / "cm"
