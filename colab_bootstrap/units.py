"""Sizes as people read them, in binary units (KiB, MiB, GiB: powers of 1024), the same in every command."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB")


def human_size(n: float) -> str:
    """183 B, 1.5 MiB, 20.0 GiB: whole bytes, else one decimal in the largest unit below 1024 (TiB at most)."""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
