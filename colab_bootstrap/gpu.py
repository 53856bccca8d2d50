"""Which GPU the runtime has, as nvidia-smi reports it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

QUERY = ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
NO_GPU_ADVICE = "Runtime > Change runtime type > GPU"


def gpu_name(say: Callable[[str], None]) -> str:
    """Print the card (or a loud warning) and return its name ("" when there is none)."""
    smi = shutil.which("nvidia-smi")
    output = ""
    if smi:
        try:
            result = subprocess.run([smi, *QUERY], capture_output=True, text=True, timeout=30)
            if result.returncode == 0:
                output = result.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            output = ""
    if not output:
        say("!" * 72)
        say("!! WARNING: no NVIDIA GPU on this runtime. For a GPU choose")
        say(f"!!   {NO_GPU_ADVICE}, then run this cell again.")
        say("!! Going on without a GPU.")
        say("!" * 72)
        return ""
    first = output.splitlines()[0]
    fields = [field.strip() for field in first.split(",")]
    say(f"GPU: {fields[0]}" + (f", {fields[1]}" if len(fields) > 1 else "")
        + (f", driver {fields[2]}" if len(fields) > 2 else ""))
    return fields[0][:120]
