"""Run the very cell that `colabssh bootstrap` prints, as `python3 cell.py`, and wait for its connect line."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from colab_bootstrap import conncode

CONNECT_PREFIX = "colabssh connect "
STANDINS = Path(__file__).parent / "standins"


@dataclass
class RunningCell:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    code: str = ""
    state: Path = Path()
    content: Path = Path()
    drive: Path = Path()
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    @property
    def info(self) -> conncode.ConnectionInfo:
        return conncode.decode(self.code)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, predicate, timeout: float = 60.0) -> str | None:
        """Read output lines until predicate(line) is true; None when the cell ended first."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the cell printed no expected line in {timeout} s:\n{self.output}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                return None
            if predicate(line):
                return line

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.wait_for(lambda line: False, timeout=20) if self.process.stdout and not self._drained() else None
        return self.process.returncode

    def _drained(self) -> bool:
        return getattr(self, "_done", False)


def cell_env(tmp: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLABSSH_", "NGROK_", "PYNGROK_"))}
    env.update({
        "COLABSSH_STATE": str(tmp / "state"),
        "COLABSSH_CONTENT": str(tmp / "content"),
        "COLABSSH_DRIVE": str(tmp / "drive"),
        "COLABSSH_HOME": str(tmp / "home"),  # whose editor-server folders sync keeps: never the real home
        "COLABSSH_PORT": "0",
        "COLABSSH_PROFILE_D": "",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


def start_cell(cell_path: Path, tmp: Path, extra_env: dict[str, str] | None = None,
               expect_code: bool = True, timeout: float = 60.0, python_flags: tuple[str, ...] = ()) -> RunningCell:
    """Run the cell as ``python3 [PYTHON_FLAGS] cell.py`` (``-S``: a python without site-packages, no pyngrok)."""
    (tmp / "drive").mkdir(parents=True, exist_ok=True)
    env = cell_env(tmp, extra_env)
    process = subprocess.Popen([sys.executable, *python_flags, str(cell_path)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env,
                               start_new_session=True)
    cell = RunningCell(process=process, state=Path(env["COLABSSH_STATE"]),
                       content=Path(env["COLABSSH_CONTENT"]), drive=Path(env["COLABSSH_DRIVE"]))

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            cell.lines.append(line)
            cell._queue.put(line)
        cell._done = True  # type: ignore[attr-defined]
        cell._queue.put(None)

    threading.Thread(target=pump, daemon=True).start()
    if expect_code:
        line = cell.wait_for(lambda text: text.startswith(CONNECT_PREFIX), timeout=timeout)
        if line is None:
            raise AssertionError(f"the cell ended without a connect line:\n{cell.output}")
        cell.code = line[len(CONNECT_PREFIX):].strip()
    return cell
