"""What `colabssh status` shows: a report's lines, and `status --watch`'s live view.

The plain status and each frame of the watch are the same lines (``report_lines``); the watch adds a sparkline of
each GPU's utilization over the last minute. On a terminal the watch is a rich Live view (rich is imported only
then: `status` itself stays light); elsewhere each report is printed as it comes, the lines followed by an empty
line (with --json: one JSON document per line), so a pipe or a log gets every frame. Ctrl-C ends the watch with
exit 0 and one last line on stderr; a runtime that goes away ends it with that said, exit 3.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Optional

from colab_bootstrap.units import human_size

if TYPE_CHECKING:
    from ..remote.runner import Remote
    from ..runtime_status import Gpu, LastSync, RuntimeStatus, Watch

BLOCKS = "▁▂▃▄▅▆▇█"
HISTORY_SECONDS = 60.0  # the sparkline's span
EVERY_DEFAULT = 2.0
EVERY_MIN, EVERY_MAX = 0.5, 3600.0


def size(n: Optional[int]) -> str:
    return "?" if n is None else human_size(n)


def duration(seconds: Optional[float]) -> str:
    """``42 s``, ``14 min``, ``2 h 5 min``, ``3 d 4 h``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def sparkline(values: list[Optional[int]]) -> str:
    """One block per sample, ▁ for 0 % to █ for 100 %; a gap where a sample said nothing."""
    return "".join(" " if v is None else BLOCKS[max(0, min(7, round(v * 7 / 100)))] for v in values)


def gpu_text(gpu: Gpu) -> str:
    """``Tesla T4  45 %  1234 of 15360 MiB  44 °C  9.7 W``: ``?`` for what the board did not say, no power then."""
    def known(value: object, unit: str) -> str:
        return "?" if value is None else f"{value}{unit}"

    parts = [gpu.name, known(gpu.utilization_percent, " %")]
    if gpu.memory_total_mib is not None or gpu.memory_used_mib is not None:
        parts.append(f"{known(gpu.memory_used_mib, '')} of {known(gpu.memory_total_mib, ' MiB')}")
    parts.append(known(gpu.temperature_c, " °C"))
    if gpu.power_w is not None:
        parts.append(f"{gpu.power_w:g} W")
    return "  ".join(parts)


def sync_text(last: Optional[LastSync]) -> str:
    if last is None:
        return "none yet"
    if last.state in ("running", "interrupted"):
        return last.state if last.state == "running" else "the last one was interrupted"
    when = f"{duration(last.ago_seconds)} ago" if last.ago_seconds is not None else "at an unknown time"
    return f"{when} ({last.state}" + (f", exit {last.exit})" if last.state == "failed" else ")")


def report_lines(report: RuntimeStatus, history: Optional[dict[int, deque[Optional[int]]]] = None) -> list[str]:
    """The lines under ``ALIAS: reachable (ADDRESS)``; with HISTORY, each GPU's sparkline too."""
    lines = []
    for number, gpu in enumerate(report.gpus):
        label = "GPU" if len(report.gpus) == 1 else f"GPU {number}"
        spark = f"  {sparkline(list(history[number]))}" if history and number in history else ""
        lines.append(f"  {label:<8} {gpu_text(gpu)}{spark}")
    if not report.gpus:
        lines.append("  GPU      " + (f"? (nvidia-smi: {report.gpu_error})" if report.gpu_error else "none"))
    lines.append(f"  served   {duration(report.served_seconds)} (VM up {duration(report.uptime_seconds)})")
    lines.append(f"  RAM      {size(report.ram_used_bytes)} of {size(report.ram_total_bytes)} used")
    lines.append(f"  disk     {size(report.disk_free_bytes)} free of {size(report.disk_total_bytes)}")
    lines.append(f"  content  {size(report.content_bytes)} in {report.content}")  # labels stay lined up
    lines.append(f"  sync     {sync_text(report.last_sync)}")
    return lines


def headline(report: RuntimeStatus) -> str:
    return f"{report.alias}: {'reachable' if report.reachable else 'unreachable'} ({report.address})"


def check_every(every: float) -> float:
    """--every: positive seconds within sensible bounds, else one line of error with a hint (exit 2)."""
    from ..errors import BAD_INPUT, ColabsshError

    if not EVERY_MIN <= every <= EVERY_MAX:  # also refuses nan
        raise ColabsshError(f"--every {every:g}: the watch refreshes every {EVERY_MIN:g} to {EVERY_MAX:g} seconds",
                            f"e.g. `colabssh status --watch --every 5` (default {EVERY_DEFAULT:g})", BAD_INPUT)
    return every


class History:
    """Each GPU's utilization over the last minute: as many samples as a minute holds at the watch's pace."""

    def __init__(self, every: float) -> None:
        self.length = max(2, round(HISTORY_SECONDS / every))
        self.series: dict[int, deque[Optional[int]]] = {}

    def add(self, report: RuntimeStatus) -> dict[int, deque[Optional[int]]]:
        for number, gpu in enumerate(report.gpus):
            self.series.setdefault(number, deque(maxlen=self.length)).append(gpu.utilization_percent)
        return self.series


def watch(remote: Remote, every: float, as_json: bool) -> None:
    """The live view until Ctrl-C (exit 0) or the runtime goes away (ColabsshError, exit 3)."""
    from ..console import plain, status
    from ..runtime_status import Watch

    history = History(every)
    live_view = not as_json and sys.stdout.isatty()  # rich is loaded for a terminal only
    with Watch(remote, every) as reports:
        try:
            if live_view:
                _live(reports, history, every)
            else:
                for report in reports.frames():
                    lines = report_lines(report, history.add(report))
                    text = (json.dumps(report.as_json()) if as_json
                            else "\n".join([f"{headline(report)} at {time.strftime('%H:%M:%S')}", *lines, ""]))
                    sys.stdout.write(plain(text) + "\n")
                    sys.stdout.flush()
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:  # the reader has gone (`| head -3`): the watch is over, as with Ctrl-C
            _drop_stdout()
    status(f"{remote.alias}: stopped watching after {reports.frames_seen} "
           f"report{'' if reports.frames_seen == 1 else 's'}")


def _live(reports: Watch, history: History, every: float) -> None:
    from rich.live import Live

    from ..console import cell, out_console

    with Live(cell(f"{reports.remote.alias}: waiting for the runtime's first report…"), console=out_console(),
              auto_refresh=False, transient=False) as live:
        for report in reports.frames():
            lines = report_lines(report, history.add(report))
            footer = f"  every {every:g} s, {time.strftime('%H:%M:%S')}; Ctrl-C to stop"
            live.update(cell("\n".join([headline(report), *lines, footer])), refresh=True)


def _drop_stdout() -> None:
    """Point stdout at the null device, so that Python's last flush at exit meets no closed pipe (no traceback)."""
    import os

    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)
