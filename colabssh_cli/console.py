"""Output: results on stdout, progress and status on stderr; NO_COLOR honoured (by rich).

Text that came from a connection code or from the runtime (a GPU name, a path, rsync's or ssh's lines) is
printed as plain text: never read as rich markup (``[link=...]`` stays those characters) and without terminal
control characters (an escape sequence is shown as ``\x1b``, not obeyed). ``plain`` makes such text safe;
``status``, ``result`` and ``cell`` apply it.
"""

from __future__ import annotations

import re
import sys
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def plain(text: str) -> str:
    """TEXT with every control character (C0 but tab and newline, C1, bidi overrides) shown escaped."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def cell(text: str, style: str = "") -> Text:
    """A table cell that shows TEXT as it is: no markup, no control characters."""
    from rich.text import Text

    return Text(plain(text), style=style)


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
    err_console().print(plain(message), markup=False, highlight=False, soft_wrap=True)


def result(text: str) -> None:
    """A plain result line, on stdout (no markup, safe for scripts)."""
    sys.stdout.write(plain(text) + "\n")
    sys.stdout.flush()
