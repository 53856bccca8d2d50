"""Settings of the runtime side of sync shared by several of its modules: file names, caps and timings."""

from __future__ import annotations

from pathlib import Path

IGNORE_FILE = ".colabsshignore"
MOUNTINFO = Path("/proc/self/mountinfo")
SPACE_MARGIN = 256 << 20
POLL_SECONDS = 0.02
STATE_FILE_MAX = 1 << 20  # job.json, result.json, current, pid files, periodic.id
