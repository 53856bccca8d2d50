"""Runtime modules run as a laptop command runs them (colab_bootstrap.ship's BOOT), here without SSH."""

from __future__ import annotations

import subprocess
import sys
import threading

from colab_bootstrap import pack

BUNDLE = pack.Bundle.of_package()
BOOT = pack.boot_program()
PAYLOAD = BUNDLE.compressed()  # what the laptop sends when the runtime's cache misses
RUNNER = "colab_bootstrap.sync.main"


def boot_argv(*args: str, module: str = RUNNER) -> list[str]:
    """``python -S -c BOOT HASH MODULE ARGS...``: MODULE from the cache, else from the bundle on stdin."""
    return [sys.executable, "-S", "-c", BOOT, BUNDLE.digest, module, *args]


def feed(process: subprocess.Popen[bytes]) -> None:
    """Send the bundle on PROCESS's stdin and close it, from a thread: on a cache hit BOOT never reads it."""
    pipe = process.stdin
    assert pipe is not None
    process.stdin = None

    def write() -> None:
        try:
            pipe.write(PAYLOAD)
            pipe.close()
        except (BrokenPipeError, ValueError, OSError):
            pass

    threading.Thread(target=write, daemon=True).start()
