"""`colabssh status`: what a runtime says about itself, read over SSH through the remote seam.

One short POSIX shell script runs on the runtime and prints a report of ``key=value`` lines ended by
``status=done``: the VM's uptime, how long the cell has served (``serving.since`` in the state folder, written by
``colab_bootstrap.serving``), RAM (/proc/meminfo), the free and total disk under the content root, the content
root's size (``du -x``, so the Drive mount below it is not walked, and bounded by ``timeout``), each GPU that
``nvidia-smi --query-gpu`` reports (none is not an error) and the last sync (``sync/current`` and its
``result.json``; one without a result is running while the sync lock's recorded holder lives: the lock itself is
never taken, so a watch cannot make a starting sync think another one runs). Times are differences taken on the
runtime, so the laptop's clock never enters.

``status --watch`` runs the same script as a loop in ONE ssh process: a report every N seconds, then
``timeout N cat`` on the channel's stdin as the pause, so the loop ends at once when the laptop closes that stdin
(Ctrl-C) or goes away. ``Watch`` reads the reports as they come.
"""

from __future__ import annotations

import json
import queue
import shlex
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional

from .errors import UNREACHABLE, ColabsshError
from .remote import process
from .remote.runner import Remote, explain_ssh_failure

TIMEOUT = 60.0
DU_SECONDS = 20  # the most a one-shot status spends on the content root's size
WATCH_DU_SECONDS = 5  # ... and a watch's report (a huge /content then shows its last known size)
WATCH_DU_EVERY = 30.0  # a watch measures the content root about this often, not at every report
WATCH_GRACE = 60.0  # a watch whose runtime sends no report for EVERY + this many seconds has lost it
FRAME_END = "status=done"
GPU_QUERY = "name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw"
GPU_SECONDS = 5  # nvidia-smi hangs when the driver is in a bad state: the report goes on without it
MAX_GPUS = 16  # boards shown (a machine has at most 8 or 16; anything more is garbage from nvidia-smi)
MAX_GPU_LINE = 256  # characters kept of each of nvidia-smi's lines

_SCRIPT = """\
c={content}
s="${{COLABSSH_STATE:-$HOME/.colabssh-runtime}}"
report() {{
  echo "now=$(date +%s)"
  echo "uptime=$(cut -d' ' -f1 /proc/uptime 2>/dev/null)"
  echo "serving_since=$(head -c 32 "$s/serving.since" 2>/dev/null)"
  awk '/^MemTotal:/ {{print "mem_total_kib=" $2}} /^MemAvailable:/ {{print "mem_available_kib=" $2}}' \
    /proc/meminfo 2>/dev/null
  df -Pk -- "$c" 2>/dev/null | awk 'NR==2 {{print "disk_total_kib=" $2; print "disk_free_kib=" $4}}'
  if [ "$1" = du ]; then
    echo "content_kib=$(timeout {du_seconds} du -skx -- "$c" 2>/dev/null | tail -n 1 | cut -f1)"
  fi
  if command -v nvidia-smi >/dev/null 2>&1; then
    # into a file, not $(...): a child nvidia-smi left behind holding the pipe would keep the report waiting
    t=$(mktemp 2>/dev/null) && {{
      timeout -k 1 {gpu_seconds} nvidia-smi --query-gpu={query} --format=csv,noheader,nounits >"$t" 2>&1
      r=$?
      if [ $r -eq 0 ]; then
        head -n {max_gpus} "$t" | cut -c 1-{max_line} | sed 's/^/gpu=/'
      elif [ $r -eq 124 ] || [ $r -eq 137 ]; then
        echo "gpu_error=nvidia-smi did not answer within {gpu_seconds} s"
      else
        head -n 1 "$t" | cut -c 1-{max_line} | sed 's/^/gpu_error=/'
      fi
      rm -f "$t"
    }}
  fi
  j=$(head -c 128 "$s/sync/current" 2>/dev/null)
  case "$j" in *[!0-9A-Za-z-]*|'') ;; *)
    echo "sync_result=$(head -c 4096 "$s/sync/jobs/$j/result.json" 2>/dev/null | tr -d '\\n')"
    p=$(head -c 4096 "$s/sync/lock" 2>/dev/null | sed -n 's/.*"pid": *\\([0-9][0-9]*\\).*/\\1/p')
    if [ -n "$p" ] && [ -d "/proc/$p" ]; then echo "sync_lock=held"; else echo "sync_lock=free"; fi ;;
  esac
  echo "{frame_end}"
}}
if [ {every} = 0 ]; then report du; exit 0; fi
n=0
while :; do
  if [ $((n % {du_every})) -eq 0 ]; then report du; else report; fi
  n=$((n + 1))
  timeout {every} cat >/dev/null
  [ $? -eq 124 ] || exit 0
done
"""


def script(content: str, every: float = 0) -> str:
    """The runtime's side: one report (EVERY 0), or a report every EVERY seconds until stdin ends."""
    du_every = max(1, round(WATCH_DU_EVERY / every)) if every else 1
    return _SCRIPT.format(content=shlex.quote(content), query=GPU_QUERY, frame_end=FRAME_END,
                          du_seconds=WATCH_DU_SECONDS if every else DU_SECONDS, every=f"{every:g}",
                          du_every=du_every, gpu_seconds=GPU_SECONDS, max_gpus=MAX_GPUS, max_line=MAX_GPU_LINE)


@dataclass
class Gpu:
    """One board, as ``nvidia-smi --query-gpu`` reports it; None where it says ``[N/A]``/``[Not Supported]``."""

    name: str
    utilization_percent: Optional[int] = None
    memory_used_mib: Optional[int] = None
    memory_total_mib: Optional[int] = None
    temperature_c: Optional[int] = None
    power_w: Optional[float] = None


@dataclass
class LastSync:
    """The latest sync on the runtime: succeeded, failed, cancelled, running or interrupted (killed unfinished)."""

    state: str
    ago_seconds: Optional[float] = None
    exit: Optional[int] = None


@dataclass
class RuntimeStatus:
    alias: str
    address: str
    reachable: bool
    gpus: list[Gpu] = field(default_factory=list)
    gpu_error: str = ""
    served_seconds: Optional[float] = None
    uptime_seconds: Optional[float] = None  # the VM's, since its boot
    ram_used_bytes: Optional[int] = None
    ram_total_bytes: Optional[int] = None
    disk_free_bytes: Optional[int] = None
    disk_total_bytes: Optional[int] = None
    content: str = ""
    content_bytes: Optional[int] = None
    last_sync: Optional[LastSync] = None
    error: str = ""
    hint: str = ""

    @property
    def gpu(self) -> Optional[Gpu]:
        return self.gpus[0] if self.gpus else None

    def as_json(self) -> dict[str, Any]:
        """All fields, with ``gpu`` (the first board, or null) beside ``gpus`` (every board)."""
        document = asdict(self)
        first = {key: document.pop(key) for key in ("alias", "address", "reachable")}
        return {**first, "gpu": document["gpus"][0] if document["gpus"] else None, **document}


def _int(text: str) -> Optional[int]:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _float(text: str) -> Optional[float]:
    """A number nvidia-smi or the shell printed; None for ``[N/A]``, ``[Not Supported]``, empty or junk."""
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _whole(text: str, low: float, high: float) -> Optional[int]:
    """A whole number within LOW..HIGH; None for anything else (a board never reports -50 % or 10^20 MiB)."""
    number = _float(text)
    return None if number is None or not low <= number <= high else round(number)


def parse_gpu(line: str) -> Optional[Gpu]:
    """``name, utilization, memory used, memory total, temperature, power`` (the name may hold a comma). A value
    outside what any board reports is unknown (None), not shown as if it were real."""
    parts = [part.strip() for part in line.rsplit(",", 5)]
    if not parts[0]:
        return None
    if len(parts) < 6:
        return Gpu(name=parts[0])
    power = _float(parts[5])
    return Gpu(name=parts[0], utilization_percent=_whole(parts[1], 0, 100),
               memory_used_mib=_whole(parts[2], 0, 1 << 24), memory_total_mib=_whole(parts[3], 0, 1 << 24),
               temperature_c=_whole(parts[4], -40, 150),
               power_w=None if power is None or not 0 <= power <= 10_000 else round(power, 1))


def parse_sync(values: dict[str, str], now: Optional[float]) -> Optional[LastSync]:
    if "sync_result" not in values:
        return None
    try:
        result = json.loads(values["sync_result"]) if values["sync_result"] else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        return LastSync("interrupted" if values.get("sync_lock") == "free" else "running")
    code = result.get("exit")
    ended = result.get("ended")
    ago = round(max(0.0, now - ended), 1) if now is not None and isinstance(ended, (int, float)) else None
    state = "cancelled" if result.get("cancelled") else "succeeded" if code == 0 else "failed"
    return LastSync(state, ago, code if isinstance(code, int) else None)


def parse_report(status: RuntimeStatus, text: str) -> RuntimeStatus:
    """STATUS filled in from one report's lines (``key=value``; a ``gpu=`` line per board)."""
    lines = [line.split("=", 1) for line in text.splitlines() if "=" in line]
    values = dict((key, value) for key, value in lines)
    now = _float(values.get("now", ""))
    status.uptime_seconds = _float(values.get("uptime", ""))
    since = _float(values.get("serving_since", ""))
    status.served_seconds = max(0.0, now - since) if now is not None and since is not None else None
    kib = {key: _int(values.get(key, "")) for key in ("mem_total_kib", "mem_available_kib", "disk_total_kib",
                                                       "disk_free_kib", "content_kib")}
    size = {key: None if value is None else value * 1024 for key, value in kib.items()}
    status.ram_total_bytes = size["mem_total_kib"]
    if size["mem_total_kib"] is not None and size["mem_available_kib"] is not None:
        status.ram_used_bytes = max(0, size["mem_total_kib"] - size["mem_available_kib"])
    status.disk_total_bytes, status.disk_free_bytes = size["disk_total_kib"], size["disk_free_kib"]
    if "content_kib" in values:  # a watch's report between two measurements keeps the last size
        status.content_bytes = size["content_kib"]
    status.gpus = [gpu for gpu in (parse_gpu(value) for key, value in lines if key == "gpu") if gpu]
    status.gpu_error = values.get("gpu_error", "").strip()
    status.last_sync = parse_sync(values, now)
    return status


def _start(remote: Remote) -> RuntimeStatus:
    session = remote.session
    return RuntimeStatus(alias=session.alias, address=session.address, reachable=False, content=session.content)


def _reached(remote: Remote, status: RuntimeStatus) -> None:
    status.reachable = True
    if remote.session.drive_folder:  # a recycled runtime that the relay found elsewhere: say where it is now
        from .comeback.notes import found

        status.address = found(remote.paths, remote.session.alias) or status.address


def runtime_status(remote: Remote, timeout: float = TIMEOUT) -> RuntimeStatus:
    """Ask the runtime; an unreachable one comes back with reachable=False, an error and a hint."""
    session = remote.session
    status = _start(remote)
    try:
        result = remote.run(f"sh -c {shlex.quote(script(session.content))}", timeout=timeout, advise=True)
    except ColabsshError as exc:
        if exc.exit_code != UNREACHABLE:
            raise
        status.error, status.hint = exc.message, exc.hint
        return status
    text = result.stdout.decode("utf-8", errors="replace")
    if FRAME_END not in text:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        raise ColabsshError(f"{session.alias}: the runtime answered but its report is incomplete"
                            + (f" ({detail[-1]})" if detail else ""), "run `colabssh ssh` to look around")
    _reached(remote, status)
    return parse_report(status, text)


class Watch:
    """``status --watch``'s one ssh process: the remote loop's reports, one RuntimeStatus each (``frames``).

    ssh runs in a session of its own, so the terminal's Ctrl-C reaches colabssh only; leaving the ``with`` closes
    ssh's stdin, which ends the remote loop at once (its pause reads that stdin), and ssh with it. A runtime
    that goes away ends the frames with a ColabsshError (exit 3)."""

    def __init__(self, remote: Remote, every: float) -> None:
        self.remote = remote
        self.every = every
        self.frames_seen = 0
        self._queue: queue.Queue[Optional[str]] = queue.Queue()
        self._stderr: list[str] = []
        self._child: Optional[process.Child] = None
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Watch:
        command = f"sh -c {shlex.quote(script(self.remote.session.content, self.every))}"
        self._child = process.spawn(self.remote.ssh_argv(command), stdin=process.PIPE, stdout=process.PIPE,
                                    stderr=process.PIPE, new_session=True)
        self._threads = [threading.Thread(target=self._read_reports, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        child = self._child
        if child is None:
            return
        try:
            if child.stdin is not None:
                child.stdin.close()  # the remote loop's pause reads it: it ends now, and ssh with it
        except OSError:
            pass
        if process.wait(child, 5.0) is None:
            process.stop(child, grace=1.0)
        for thread in self._threads:
            thread.join(timeout=5.0)

    def _read_reports(self) -> None:
        assert self._child is not None and self._child.stdout is not None
        frame: list[str] = []
        for raw in self._child.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            frame.append(line)
            if line == FRAME_END:
                self._queue.put("\n".join(frame))
                frame = []
        self._queue.put(None)

    def _read_stderr(self) -> None:
        assert self._child is not None and self._child.stderr is not None
        for raw in self._child.stderr:
            self._stderr.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
            del self._stderr[:-50]

    def frames(self) -> Iterator[RuntimeStatus]:
        """Each report as it comes; ends with a ColabsshError when the runtime stops sending them."""
        status = _start(self.remote)
        while True:
            try:
                text = self._queue.get(timeout=self.every + WATCH_GRACE)
            except queue.Empty:
                raise self._lost(f"sent no report for {self.every + WATCH_GRACE:.0f} s") from None
            if text is None:
                raise self._ended()
            if not self.frames_seen:
                _reached(self.remote, status)
            self.frames_seen += 1
            status = parse_report(replace(status), text)
            yield status

    def _ended(self) -> ColabsshError:
        assert self._child is not None
        code = process.wait(self._child, 5.0)
        if not self.frames_seen and code in (255, 127):
            return explain_ssh_failure(self.remote.alias, code, "\n".join(self._stderr))
        last = next((line for line in reversed(self._stderr) if line.strip()), "")
        return self._lost("went away" + (f" ({last.strip()})" if last else ""))

    def _lost(self, what: str) -> ColabsshError:
        return ColabsshError(f"{self.remote.alias}: the runtime {what} during the watch",
                             "re-run the cell in Colab, then `colabssh connect` the new code", UNREACHABLE)
