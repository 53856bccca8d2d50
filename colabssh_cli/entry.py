"""The `colabssh` program's entry point: the CLI (app.py), with a Ctrl-C that comes while its modules still
import answered like any other Ctrl-C (one line, exit 130), not with a traceback."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from .app import main as run
    except KeyboardInterrupt:
        sys.stderr.write("colabssh: interrupted\n")
        return 130  # errors.INTERRUPTED (not imported: the import is what was interrupted)
    return run()
