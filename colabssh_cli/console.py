"""Output: results on stdout, progress and status on stderr; NO_COLOR honoured (by rich)."""

from __future__ import annotations

import sys
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@cache
def out_console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def status(message: str) -> None:
    """A progress or status line, on stderr."""
    err_console().print(message, markup=False, highlight=False, soft_wrap=True)


def result(text: str) -> None:
    """A plain result line, on stdout (no markup, safe for scripts)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
