"""Where colabssh keeps things on Drive (under ``<Drive>/colabssh/``), one name for both sides.

- ``content/``: the backup of the content root (``colabssh sync``; ``sync.protocol.DEFAULT_FOLDER``)
- ``home/``: the editor servers' folders of the runtime's home (``.vscode-server`` ...), without what they rebuild
- ``trash/``: dated folders of files a sync deleted or replaced
- ``runtimes/KEYID/``: one folder per authorised laptop key (KEYID: 16 hex digits of the key's SHA-256):
  the runtime's host key (written once, reused by every later runtime of that key, so a recycled runtime
  presents the same key) and ``connect.code``, the connection code of the runtime that ran last

The laptop reads ``runtimes/*/connect.code`` through Google Drive for desktop (``connect --drive-folder``).
Standard library only: the laptop imports this module too.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

ROOT = "colabssh"
CONTENT_FOLDER = "colabssh/content"
HOME_FOLDER = "colabssh/home"
RUNTIMES_FOLDER = "colabssh/runtimes"
HOST_KEY_NAME = "ssh_host_ed25519_key"  # and HOST_KEY_NAME + ".pub"
CODE_NAME = "connect.code"
EDITOR_FOLDERS = (".vscode-server", ".cursor-server", ".vscodium-server")


def key_id(public_key_line: str) -> str:
    """16 hex digits naming an authorised key ("ssh-ed25519 BASE64 [comment]"): its runtimes' folder on Drive."""
    blob = base64.b64decode(public_key_line.split()[1])
    return hashlib.sha256(blob).hexdigest()[:16]


def runtime_folder(drive: Path, public_key_line: str) -> Path:
    """``<Drive>/colabssh/runtimes/KEYID``: the host key and the latest code of this key's runtimes."""
    return drive / RUNTIMES_FOLDER / key_id(public_key_line)
