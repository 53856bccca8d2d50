"""A small editor-server folder laid out like a real ``~/.vscode-server``, with what the backup must leave out."""

from __future__ import annotations

import os
import socket
from pathlib import Path

COMMIT = "f1a4fb101478ce6ec82fe9627c43efbf9e98c813"
KEPT = (
    f"bin/{COMMIT}/out/server-main.js",
    f"bin/{COMMIT}/product.json",
    f"cli/servers/Stable-{COMMIT}/server/package.json",
    "cli/servers/lru.json",
    "extensions/extensions.json",
    "extensions/ms-python.python-2024.8.0/package.json",
    "extensions/ms-python.vscode-pylance-2024.6.1/dist/server.bundle.js",
    "data/Machine/settings.json",
    "data/User/globalStorage/state.vscdb",
)
EXECUTABLE = (f"bin/{COMMIT}/node", f"code-{COMMIT}")
LEFT_OUT = (
    "data/logs/20240601T101010/remoteagent.log",
    "data/CachedExtensionVSIXs/ms-python.python-2024.8.0",
    f".{COMMIT}.log",
    f".{COMMIT}.pid",
    f".{COMMIT}.token",
    f".cli.{COMMIT}.log",
    f"vscode-remote-lock.root.{COMMIT}",
    f"cli/servers/Stable-{COMMIT}/log.txt",
    f"cli/servers/Stable-{COMMIT}/pid.txt",
    "extensions/ms-python.python-2024.8.0/__pycache__/x.cpython-311.pyc",
)
SPECIAL = ("data/server.sock", "data/pipe.fifo")


def make_editor_folder(home: Path, name: str = ".vscode-server") -> Path:
    """NAME in HOME with kept files, executables, left-out files, a socket and a FIFO; returns the folder."""
    root = home / name
    for rel in KEPT + EXECUTABLE + LEFT_OUT:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{rel}\n")
    for rel in EXECUTABLE:
        (root / rel).chmod(0o755)
    os.mkfifo(root / SPECIAL[1])
    here = os.getcwd()
    os.chdir(root / "data")  # a relative bind: a tmp path can pass the 108 bytes a socket's path may have
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind("server.sock")
        sock.close()
    finally:
        os.chdir(here)
    return root


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_socket() or p.is_fifo()}
