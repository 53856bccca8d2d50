"""Byte-level reading of ssh config and known_hosts text: lines, markers, Host patterns, blocks.

Everything here works on ``bytes`` and never re-serialises user content: a file is split into
lines that keep their own endings (only ``\\n`` ends a line, so a lone ``\\r`` stays inside its
line), and a new file is made by joining untouched lines with new ones. Text is decoded (latin-1,
which cannot fail) only to *look at* a line, never to write it back.

The patterns follow OpenSSH 9.2's ``readconf.c``/``match.c``: a keyword ends at whitespace or one
``=``; arguments split like ``argv_split`` (double or single quotes, backslash escapes, a ``#`` at the
start of an argument ends the line); ``*`` and ``?`` are the only wildcards; ``Host`` patterns match
case-sensitively, ``Match host`` ones case-insensitively; a matching negated pattern (``!pat``) makes
the whole list not match.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from functools import cache

_WS = " \t"
_KEYWORD = re.compile(r"([^\s=]+)[ \t]*(?:=[ \t]*)?(.*)", re.DOTALL)


def split_lines(data: bytes) -> list[bytes]:
    """Lines with their endings kept; ``b"".join(split_lines(d)) == d`` always."""
    if not data:
        return []
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def content(line: bytes) -> bytes:
    """A line without its ending (``\\n`` or ``\\r\\n``)."""
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    return line


def is_blank(line: bytes) -> bool:
    return not content(line).strip(b" \t\f")


def uses_crlf(data: bytes) -> bool:
    """True when most line endings in the file are CRLF (ties and files without endings: LF)."""
    crlf = data.count(b"\r\n")
    return crlf > data.count(b"\n") - crlf


def show(line: bytes) -> str:
    """A line as text for a message: its ending dropped, odd bytes replaced, long lines cut."""
    text = content(line).decode("utf-8", errors="replace")
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= 120 else text[:117] + "..."


# ----------------------------------------------------------------------------------------- tokens


def keyword_and_rest(line: bytes) -> tuple[str, str] | None:
    """(lower-case keyword, the rest of the line) for a config line; None for blank and comment lines."""
    text = content(line).decode("latin-1").strip(_WS + "\f")
    if not text or text.startswith("#"):
        return None
    match = _KEYWORD.match(text)
    if match is None:  # pragma: no cover - the regex matches any non-empty text without leading space
        return None
    return match.group(1).lower(), match.group(2)


def split_args(rest: str) -> list[str]:
    """Arguments as OpenSSH's argv_split (with terminate_on_comment) sees them."""
    args: list[str] = []
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in _WS:
            i += 1
        if i >= n or rest[i] == "#":
            break
        arg: list[str] = []
        quote = ""
        while i < n:
            ch = rest[i]
            if not quote and ch in _WS:
                break
            if ch == "\\" and i + 1 < n and (rest[i + 1] in "'\"\\" or (not quote and rest[i + 1] == " ")):
                arg.append(rest[i + 1])
                i += 2
                continue
            if not quote and ch in "'\"":
                quote = ch
            elif quote and ch == quote:
                quote = ""
            else:
                arg.append(ch)
            i += 1
        args.append("".join(arg))
    return args


@cache
def pattern_regex(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """PATTERN (``*`` any run, ``?`` one character, everything else literal) compiled once per process: a config
    of thousands of Host patterns would overflow ``re``'s own cache and compile every pattern on every read."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _could_match(pattern: str, name: str, ignore_case: bool) -> bool:
    """False when PATTERN cannot match NAME: its literal start or end, or its length, rules it out (no regex; most
    patterns of a long config end here)."""
    if ignore_case:
        if not (pattern.isascii() and name.isascii()):
            return True  # re's case folding is wider than str.lower's: let the regex decide
        pattern, name = pattern.lower(), name.lower()
    first = min((i for i in (pattern.find("*"), pattern.find("?")) if i >= 0), default=len(pattern))
    last = max(pattern.rfind("*"), pattern.rfind("?"))
    stars = pattern.count("*")
    if len(name) < len(pattern) - stars or (not stars and len(name) != len(pattern)):
        return False
    return name.startswith(pattern[:first]) and name.endswith(pattern[last + 1:])


def wildcard_match(pattern: str, name: str, *, ignore_case: bool = False) -> bool:
    """OpenSSH's match_pattern: ``*`` any run, ``?`` one character, everything else literal."""
    if not ignore_case and "*" not in pattern and "?" not in pattern:  # a plain name: no regex at all
        return pattern == name
    if not _could_match(pattern, name, ignore_case):
        return False
    return pattern_regex(pattern, ignore_case).fullmatch(name) is not None


def names_alias(patterns: list[str], alias: str, *, ignore_case: bool = False) -> bool:
    """Whether a pattern list applies to ALIAS through some pattern other than a bare ``*``."""
    named = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        if wildcard_match(body, alias, ignore_case=ignore_case):
            if negated:
                return False
            if body != "*":
                named = True
    return named


def match_line_names_alias(rest: str, alias: str) -> bool:
    """Whether a ``Match`` line has a (non-negated) host/originalhost criterion naming ALIAS."""
    args = split_args(rest)
    i = 0
    while i < len(args):
        criterion = args[i].lower()
        negated = criterion.startswith("!")
        criterion = criterion.lstrip("!")
        if criterion in ("all", "canonical", "final"):
            i += 1
            continue
        value = args[i + 1] if i + 1 < len(args) else ""
        i += 2
        if not negated and criterion in ("host", "originalhost"):
            if names_alias(value.split(","), alias, ignore_case=True):
                return True
    return False


# ---------------------------------------------------------------------------------------- markers


@dataclass(frozen=True)
class Span:
    """Line indexes (0-based, inclusive) of the managed block's BEGIN and END lines."""

    begin: int
    end: int


class MarkerError(Exception):
    """The markers are not one well-formed pair; the message names the line numbers (1-based)."""


def marker_lines(lines: list[bytes], marker: bytes) -> list[int]:
    """Indexes of the lines that are MARKER as a whole line (spaces, tabs and ``\\r`` around it ignored)."""
    return [i for i, line in enumerate(lines) if marker in line and content(line).strip(b" \t") == marker]


def find_span(lines: list[bytes], begin_marker: bytes, end_marker: bytes) -> Span | None:
    """The block's span, None when there is no block; MarkerError for any other shape."""
    begins = marker_lines(lines, begin_marker)
    ends = marker_lines(lines, end_marker)
    where = ", ".join(f"line {i + 1}" for i in sorted(begins + ends))
    if not begins and not ends:
        return None
    if len(begins) > 1:
        raise MarkerError(f"more than one colabssh start marker ({', '.join(f'line {i + 1}' for i in begins)})")
    if len(ends) > 1:
        raise MarkerError(f"more than one colabssh end marker ({', '.join(f'line {i + 1}' for i in ends)})")
    if not begins:
        raise MarkerError(f"a colabssh end marker without a start marker ({where})")
    if not ends:
        raise MarkerError(f"a colabssh start marker without an end marker ({where})")
    if ends[0] < begins[0]:
        raise MarkerError(f"the colabssh end marker comes before the start marker ({where})")
    return Span(begins[0], ends[0])


# ------------------------------------------------------------------------------ Host/Match blocks


def block_starts(lines: list[bytes]) -> list[int]:
    """Indexes of the lines that open a block (a ``Host`` or ``Match`` keyword)."""
    starts = []
    for i, line in enumerate(lines):
        parsed = keyword_and_rest(line)
        if parsed and parsed[0] in ("host", "match"):
            starts.append(i)
    return starts


def host_block(lines: list[bytes], alias: str) -> tuple[int, int] | None:
    """[start, stop) of the block whose line is exactly ``Host ALIAS`` (trailing blank lines excluded)."""
    starts = block_starts(lines)
    for k, start in enumerate(starts):
        parsed = keyword_and_rest(lines[start])
        if parsed and parsed[0] == "host" and split_args(parsed[1]) == [alias]:
            stop = starts[k + 1] if k + 1 < len(starts) else len(lines)
            while stop > start + 1 and is_blank(lines[stop - 1]):
                stop -= 1
            return start, stop
    return None


# ------------------------------------------------------------------------------------ known_hosts


def known_host_names(line: bytes) -> str | None:
    """The host-pattern field of a known_hosts line (None for blank/comment/marker lines)."""
    fields = content(line).decode("latin-1").split()
    if not fields or fields[0].startswith("#") or fields[0].startswith("@"):
        return None
    return fields[0]


def pins_name(line: bytes, name: str) -> bool:
    """Whether a known_hosts line is a plain key line for NAME (plain, comma list or hashed ``|1|``)."""
    names = known_host_names(line)
    if names is None:
        return False
    lowered = name.lower()
    if names.startswith("|1|"):
        try:
            _, _, salt, digest = names.split("|", 3)
            expected = hmac.new(base64.b64decode(salt), lowered.encode(), hashlib.sha1).digest()
            return hmac.compare_digest(expected, base64.b64decode(digest))
        except (ValueError, TypeError):
            return False
    return any(part.lower() == lowered for part in names.split(","))
