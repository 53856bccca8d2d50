"""Serving once the cell has started: in the foreground until a signal (a script), or in the background while the
notebook's kernel runs (a heartbeat thread). ``runtime.main`` picks one."""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable

from .runtime import Runtime, say

SERVING_SINCE = "serving.since"  # in the state folder: when this run of the cell began to serve (`colabssh status`)


def mark_serving(runtime: Runtime) -> None:
    """Write the time (whole seconds since the epoch) this run began to serve, so `colabssh status` can say how
    long the cell has served: the VM's own uptime (/proc/uptime) counts from the machine's boot, often long
    before. A state folder that cannot be written loses only that line of the status."""
    try:
        (runtime.settings.state / SERVING_SINCE).write_text(f"{int(time.time())}\n")
    except OSError:
        pass


def serve_foreground(runtime: Runtime, stop: threading.Event, out: Callable[[str], None] = say) -> int:
    """Keep serving until ``stop`` is set (by SIGINT/SIGTERM); then stop what this run started, nothing else."""
    code = 0
    taken_over = False
    mark_serving(runtime)
    try:
        out("serving; press Ctrl-C to stop")
        while not stop.wait(runtime.settings.heartbeat):
            if not runtime.is_current():
                out("colabssh: a later run of the cell took over; this one stops")
                taken_over = True
                break
            problem = runtime.healthy()
            if problem:
                out(f"colabssh: {problem}; run the cell again")
                code = 1
                break
            out(f"colabssh: serving ({time.strftime('%H:%M:%S')})")
    finally:
        runtime.stop()
        # a later run stopped this one's sshd and tunnel as it took over, and serves now: say that, not "stopped"
        stopped = "sshd" if runtime.tunnel.kind == "local" else f"sshd and the {runtime.tunnel.kind} tunnel"
        out("colabssh: this run has ended; the later run serves SSH now" if taken_over
            else f"colabssh: stopped {stopped}")
    return code


def serve_in_background(runtime: Runtime, out: Callable[[str], None] = say) -> threading.Thread:
    """In a notebook the cell returns; sshd and the tunnel live on as children of the kernel.

    A daemon thread appends a heartbeat line to ``runtime.log`` in the state folder every
    ``COLABSSH_HEARTBEAT`` seconds and says (there and in the cell's output) if sshd or the
    tunnel stopped. It ends quietly when a later run of the cell takes over the state folder.
    pyngrok's own monitor thread keeps draining the agent's log, and its atexit hook stops the
    agent when the kernel exits; sshd, started in a session of its own, is stopped by ours.
    """
    log = runtime.settings.state / "runtime.log"
    mark_serving(runtime)

    def stop_at_exit() -> None:
        if runtime.is_current():
            runtime.stop()

    atexit.register(stop_at_exit)

    def beat() -> None:
        while True:
            time.sleep(runtime.settings.heartbeat)
            if not runtime.is_current():
                atexit.unregister(stop_at_exit)
                return
            problem = runtime.healthy()
            try:
                with open(log, "a") as handle:
                    handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {problem or 'serving'}\n")
            except OSError:
                pass
            if problem and runtime.is_current():  # not when a later run or colabssh_stop() ended it
                out(f"colabssh: {problem}; run the cell again")
                return

    thread = threading.Thread(target=beat, name="colabssh-heartbeat", daemon=True)
    thread.start()
    return thread


class Signals:
    """SIGINT/SIGTERM for a cell run as a script: interrupt the start-up (which then cleans up), or end serving."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.serving = False

    def __call__(self, _signum: int, _frame: object) -> None:
        if self.serving:
            self.stop.set()
        else:
            raise KeyboardInterrupt
