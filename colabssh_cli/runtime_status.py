"""`colabssh status`: what a runtime says about itself, read over SSH through the remote seam.

One short POSIX shell script runs on the runtime and prints ``key=value`` lines:
uptime, the free and total disk under the content root, the content root's size
(``du -x``, so the Drive mount below it is not walked, and bounded by ``timeout``)
and the GPU that ``nvidia-smi`` reports (none is not an error).
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from typing import Any, Optional

from .errors import UNREACHABLE, ColabsshError
from .remote.runner import Remote

TIMEOUT = 60.0

_SCRIPT = """\
c={content}
echo "uptime=$(cut -d' ' -f1 /proc/uptime 2>/dev/null)"
df -Pk -- "$c" 2>/dev/null | awk 'NR==2 {{print "disk_total_kib=" $2; print "disk_free_kib=" $4}}'
echo "content_kib=$(timeout 20 du -skx -- "$c" 2>/dev/null | tail -n 1 | cut -f1)"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader,nounits 2>/dev/null \
    | head -n 1 | sed 's/^/gpu=/'
fi
echo "status=done"
"""


@dataclass
class RuntimeStatus:
    alias: str
    address: str
    reachable: bool
    gpu: str = ""
    gpu_memory_used_mib: Optional[int] = None
    gpu_memory_total_mib: Optional[int] = None
    uptime_seconds: Optional[float] = None
    disk_free_bytes: Optional[int] = None
    disk_total_bytes: Optional[int] = None
    content: str = ""
    content_bytes: Optional[int] = None
    error: str = ""
    hint: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _number(text: str) -> Optional[int]:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def parse_report(status: RuntimeStatus, text: str) -> RuntimeStatus:
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    try:
        status.uptime_seconds = float(values.get("uptime", ""))
    except ValueError:
        status.uptime_seconds = None
    kib = {key: _number(values.get(key, "")) for key in ("disk_total_kib", "disk_free_kib", "content_kib")}
    status.disk_total_bytes = kib["disk_total_kib"] * 1024 if kib["disk_total_kib"] is not None else None
    status.disk_free_bytes = kib["disk_free_kib"] * 1024 if kib["disk_free_kib"] is not None else None
    status.content_bytes = kib["content_kib"] * 1024 if kib["content_kib"] is not None else None
    gpu = [part.strip() for part in values.get("gpu", "").split(",")]
    if gpu and gpu[0]:
        status.gpu = gpu[0]
        if len(gpu) >= 3:
            status.gpu_memory_used_mib, status.gpu_memory_total_mib = _number(gpu[1]), _number(gpu[2])
    return status


def runtime_status(remote: Remote, timeout: float = TIMEOUT) -> RuntimeStatus:
    """Ask the runtime; an unreachable one comes back with reachable=False, an error and a hint."""
    session = remote.session
    status = RuntimeStatus(alias=session.alias, address=session.address, reachable=False, content=session.content)
    script = _SCRIPT.format(content=shlex.quote(session.content))
    try:
        result = remote.run(f"sh -c {shlex.quote(script)}", timeout=timeout, advise=True)
    except ColabsshError as exc:
        if exc.exit_code != UNREACHABLE:
            raise
        status.error, status.hint = exc.message, exc.hint
        return status
    text = result.stdout.decode("utf-8", errors="replace")
    if "status=done" not in text:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        raise ColabsshError(f"{session.alias}: the runtime answered but its report is incomplete"
                            + (f" ({detail[-1]})" if detail else ""), "run `colabssh ssh` to look around")
    status.reachable = True
    if session.drive_folder:  # a recycled runtime that the relay found elsewhere: say where it is now
        from .comeback.notes import found

        status.address = found(remote.paths, session.alias) or status.address
    return parse_report(status, text)
