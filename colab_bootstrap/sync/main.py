"""``python -m colab_bootstrap.sync.main`` (or BOOT, from the laptop): the runner's command line."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from ..settings import home_folder, state_folder
from .plan import ensure_rsync
from .protocol import DEFAULT_FOLDER, SyncOptions, SyncRefused
from .request import Request
from .runs import _refused, attach, cancel, emit_json, start


def _parse_args(argv: Sequence[str]) -> tuple[str, dict]:
    import argparse

    parser = argparse.ArgumentParser(prog="sync_runner")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "attach", "cancel"):
        command = sub.add_parser(name)
        command.add_argument("--state", default=str(state_folder(os.environ)))
        if name in ("start", "cancel"):
            command.add_argument("--token", default="")
        if name == "cancel":
            command.add_argument("--wait", type=float, default=0.0)
        if name == "start":
            command.add_argument("--mode", choices=("backup", "restore"), default="backup")
            command.add_argument("--content", default=os.environ.get("COLABSSH_CONTENT") or "/content")
            command.add_argument("--drive", default=os.environ.get("COLABSSH_DRIVE") or "")
            command.add_argument("--folder", default=DEFAULT_FOLDER)
            command.add_argument("--home", default="")  # whose editor folders a full backup keeps (COLABSSH_HOME)
            command.add_argument("--exclude", action="append", default=[])
            command.add_argument("--delete", action="store_true")
            command.add_argument("--dry-run", action="store_true")
            command.add_argument("--force", action="store_true")
            command.add_argument("--bwlimit", type=int, default=0)
            command.add_argument("paths", nargs="*")
    sub.add_parser("ensure-rsync")
    args = parser.parse_args(list(argv))
    return args.command, vars(args)


def main(argv: Optional[Sequence[str]] = None) -> int:
    command, args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if command == "ensure-rsync":
            try:
                ensure_rsync(lambda text: emit_json({"event": "message", "text": text}))
            except SyncRefused as exc:
                return _refused(exc, emit_json)
            return 0
        state = Path(args["state"]).absolute()
        if command == "attach":
            return attach(state)
        if command == "cancel":
            return cancel(state, token=args["token"], wait=min(max(args["wait"], 0.0), 10.0))
        if not args["drive"]:
            return _refused(SyncRefused("this runtime has no Drive folder",
                                        "on Colab, re-run the colabssh cell so it mounts Drive; elsewhere set "
                                        "COLABSSH_DRIVE before starting the cell", "no_drive"),
                            emit_json)
        home = Path(args["home"]) if args["home"] else home_folder(os.environ)
        request = Request.of(SyncOptions.from_args(args), Path(args["content"]), Path(args["drive"]), home)
        return start(request, state, token=args["token"])
    except BrokenPipeError:  # the laptop went away; a detached run goes on
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when python flushes
        return 1
