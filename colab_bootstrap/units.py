"""Sizes and counts as people read them, the same in every command and on both sides.

Sizes in binary units (KiB, MiB, GiB: powers of 1024; never kB or MB). Counts with their noun in the right number
and thousands separators: ``count(1, "file")`` is "1 file", ``count(1203, "file")`` "1,203 files". Every message
that puts a number before a noun goes through ``count`` (tests/test_message_catalogue.py holds the sources to it).
"""

from __future__ import annotations

import re
from typing import Optional

_UNITS = ("B", "KiB", "MiB", "GiB")


def human_size(n: float) -> str:
    """183 B, 1.5 MiB, 20.0 GiB: whole bytes, else one decimal in the largest unit below 1024 (TiB at most)."""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def plural(noun: str) -> str:
    """The plural of a noun as colabssh's messages use them: entry -> entries, process -> processes, file -> files.
    The last word is the one that changes ("symbolic link" -> "symbolic links")."""
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", noun):
        return noun + "es"
    return noun + "s"


def took(seconds: float) -> str:
    """How long something took, as the summaries say it: "in 41.3 s", and "in under 0.1 s" rather than "in 0.0 s"."""
    return "in under 0.1 s" if seconds < 0.05 else f"in {seconds:.1f} s"


def count(n: int, noun: str, plural_form: Optional[str] = None) -> str:
    """N and its noun in the right number, N with thousands separators: 1 file, 0 files, 1,203 files."""
    return f"{n:,} {noun if n == 1 else (plural_form or plural(noun))}"


_RSYNC_RATE = re.compile(r"\s*([\d.,]+)\s*([kMGT]?)B/s\s*")
_RSYNC_SCALE = {"": 1, "k": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def rsync_rate(text: str) -> str:
    """rsync's progress rate ("12.34MB/s", "0.00kB/s": its k, M and G are powers of 1024) in binary units, as
    every other size is shown: "12.3 MiB/s". Anything else is returned as it came."""
    match = _RSYNC_RATE.fullmatch(text or "")
    if match is None:
        return text
    try:
        value = float(match.group(1).replace(",", ""))
    except ValueError:
        return text
    return f"{human_size(value * _RSYNC_SCALE[match.group(2)])}/s"
