"""Run a module of colab_bootstrap on the runtime: the laptop's half of ``colab_bootstrap.ship``.

``run_module`` runs ``python -S -c BOOT HASH MODULE ARGS...`` with the runtime's python (the cell's, from the
connection code) through the remote seam, stdin closed: when the runtime's cache holds this colabssh's bundle
(the cell stored it, or an earlier command sent it), nothing else travels. When BOOT answers that it has none
(``ship.MISS_EXIT`` and ``ship.MISS_MARKER`` on stderr), the same command runs once more with the compressed
bundle on stdin; the runtime checks its hash, caches it and runs it. ``colabssh sync`` and ``colabssh demo`` both
come this way.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Optional

from colab_bootstrap import pack, ship

from .process import LineSink
from .runner import Remote


@lru_cache(maxsize=1)
def bundle() -> pack.Bundle:
    """This colabssh's colab_bootstrap, as it is shipped (read once per process)."""
    return pack.Bundle.of_package()


@lru_cache(maxsize=1)
def boot_program() -> str:
    return pack.boot_program()


def module_command(python: str, module: str, args: Sequence[str], *, site: bool = False) -> str:
    """The remote shell command. Without SITE, ``-S``: the standard library only (the demo needs site: torch)."""
    flags = [] if site else ["-S"]
    return shlex.join([python, *flags, "-c", boot_program(), bundle().digest, module, *args])


def run_module(remote: Remote, module: str, args: Sequence[str] = (), *,
               on_stdout: Optional[LineSink] = None, on_stderr: Optional[LineSink] = None, site: bool = False,
               timeout: Optional[float] = None, stop_on_interrupt: bool = False) -> int:
    """Run colab_bootstrap's MODULE (``main(ARGS)``) with the runtime's python; hand each output line on as it
    arrives; return its exit status. The code comes from the runtime's cache, else it is sent (once).
    STOP_ON_INTERRUPT: Ctrl-C stops it on the runtime too (``Remote.stream``; raises ``RemoteInterrupted``)."""
    command = module_command(remote.session.python, module, args, site=site)
    missed: list[str] = []

    def stderr_line(line: str) -> None:
        if line.startswith(ship.MISS_MARKER):
            missed.append(line)
        elif on_stderr is not None:
            on_stderr(line)

    deadline = None if timeout is None else time.monotonic() + timeout
    code = remote.stream(command, on_stdout=on_stdout, on_stderr=stderr_line, timeout=timeout,
                         stop_on_interrupt=stop_on_interrupt)
    if code != ship.MISS_EXIT or not missed:
        return code
    remaining = None if deadline is None else max(deadline - time.monotonic(), 0.1)
    return remote.stream(command, input=bundle().compressed(), on_stdout=on_stdout, on_stderr=on_stderr,
                         timeout=remaining, stop_on_interrupt=stop_on_interrupt)
