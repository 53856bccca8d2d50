"""The ssh config files colabssh changes, planned as bytes and written safely.

Three files (see paths.py):

* the user's ``~/.ssh/config``: colabssh adds one managed block at the very top (byte 0)::

      # >>> colabssh managed block (do not edit; `colabssh forget` removes it) >>>
      Include /home/me/.ssh/colabssh/config
      # <<< colabssh managed block <<<
      <one empty line, only when the file had any content>
      <the user's bytes, untouched>

  The block's lines end like the file's lines (CRLF when most of its lines do; LF for a new or
  empty file). When colabssh created the file, the block also holds the comment line CREATED_NOTE.
  Separator rule, exact: connect inserts ``block + EOL`` before a non-empty file, ``block`` alone
  before an empty or missing one; forget removes the block's lines and, when the line right after
  the end marker is an empty line (nothing but its ending), that line too; when the block held
  CREATED_NOTE and nothing else is left, forget removes the file. So connect then forget gives
  back the very bytes (or the missing file) that were there. An existing block is never moved
  (the user may have put lines above it; `ssh -G` then tells whether they override it).
  Markers count only as whole lines (spaces, tabs and a trailing ``\\r`` around them ignored);
  any other shape (two starts, two ends, an end alone, a start alone, the end before the start)
  is refused, and so is a block holding lines that colabssh did not write.
  A ``Host`` or ``Match host`` line outside the block that names the alias (exactly or by a pattern
  other than a bare ``*``) is refused with its line number. Files that the user's config Includes
  are never read or edited, so a ``Host`` line in them is not seen by that check (`ssh -G ALIAS`
  still shows its effect). The Include path is refused when it holds ``%``, ``*``, ``?`` or ``[``
  (newer OpenSSH releases may expand them there). Before each run that changes this file, its old
  bytes are kept beside it: the user's original and the latest backup, no more (backups.py).
* colabssh's own ``~/.ssh/colabssh/config``: a header comment, then one ``Host ALIAS`` block per
  session, separated by one empty line; removed when its last block goes.
* colabssh's ``~/.ssh/colabssh/known_hosts``: exactly one ``HOSTKEYALIAS TYPE BASE64`` line per
  pinned alias (the bare alias, never ``[host]:port``, which OpenSSH would not find); removed when
  empty.

Nothing is written while planning: ``plan_connect``/``plan_forget`` return a Plan (old and new
bytes per file) that ``apply`` writes under the lock, after checking that nothing changed since.
"""


from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import BAD_INPUT, ColabsshError
from ..paths import Paths
from . import text
from .files import read_bytes
from .render import (
    BEGIN_MARKER,
    CREATED_NOTE,
    END_MARKER,
    HOST_KEY,
    NAME,
    OWN_HEADER,
    HostEntry,
    host_key_alias,
    path_text,
    quoted,
    render_host_entry,
    word,
)

# ---------------------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Plan:
    """What a change would do; nothing written yet. Files are written in the dict's order."""

    files: dict[Path, tuple[bytes | None, bytes | None]]
    dirs: tuple[Path, ...] = ()  # connection sharing folders to create
    base: Path | None = None  # diff paths are shown relative to this folder (the home)
    intent: str = ""  # what the change is, for the journal ("connect colab", "forget colab"; see repair.py)

    def changed(self) -> bool:
        return any(old != new for old, new in self.files.values()) or any(not d.is_dir() for d in self.dirs)

    def with_file(self, path: Path, old: bytes | None, new: bytes | None) -> Plan:
        """This plan, and PATH changed from OLD to NEW in the same transaction (written after the others)."""
        return Plan({**self.files, path: (old, new)}, self.dirs, self.base, self.intent)

    def reversed(self) -> Plan:
        """The plan that puts every file back to the bytes it had before this one."""
        return Plan({path: (new, old) for path, (old, new) in self.files.items() if old != new}, (), self.base,
                    f"undo {self.intent}".strip())

    def diff_bytes(self) -> bytes:
        """A unified diff of every changed file, exact bytes; apply it with ``cd BASE && patch -p1``."""
        out: list[bytes] = []
        for path, (old, new) in self.files.items():
            if old == new:
                continue
            label = self._label(path)
            before = text.split_lines(old or b"")
            after = text.split_lines(new or b"")
            lines = difflib.diff_bytes(difflib.unified_diff, before, after,
                                       b"/dev/null" if old is None else b"a/" + label,
                                       b"/dev/null" if new is None else b"b/" + label, lineterm=b"\n")
            for line in lines:
                out.append(line if line.endswith(b"\n") else line + b"\n\\ No newline at end of file\n")
        return b"".join(out)

    def diff(self) -> str:
        """diff_bytes() as text; odd bytes come back as surrogates: print it with
        ``sys.stdout.buffer.write(plan.diff().encode('utf-8', 'surrogateescape'))`` to keep it exact."""
        return self.diff_bytes().decode("utf-8", errors="surrogateescape")

    def _label(self, path: Path) -> bytes:
        if self.base is not None:
            try:
                return os.fsencode(str(path.relative_to(self.base)))
            except ValueError:
                pass
        return os.fsencode(str(path).lstrip("/"))


def _eol(data: bytes) -> bytes:
    return b"\r\n" if text.uses_crlf(data) else b"\n"


def include_line(paths: Paths) -> str:
    value = path_text("colabssh's config file", paths.config)
    for bad in ("%", "*", "?", "["):
        if bad in value:
            raise ColabsshError(f"colabssh cannot write an Include line for {value} (it contains {bad!r})",
                                "use a home folder whose path has no '%', '*', '?' or '['", BAD_INPUT)
    return f"Include {quoted(value)}"


def _marker_error(path: Path, exc: text.MarkerError) -> ColabsshError:
    return ColabsshError(f"{path}: {exc}; colabssh changed nothing",
                         "keep exactly one colabssh block (start and end marker lines, in that order) or delete "
                         "both marker lines and what is between them, then run the command again", BAD_INPUT)


def find_block(path: Path, lines: list[bytes]) -> text.Span | None:
    try:
        span = text.find_span(lines, BEGIN_MARKER.encode(), END_MARKER.encode())
    except text.MarkerError as exc:
        raise _marker_error(path, exc) from None
    if span is None:
        return None
    for i in range(span.begin + 1, span.end):
        parsed = text.keyword_and_rest(lines[i])
        if parsed is not None and parsed[0] != "include":
            raise ColabsshError(f"{path}: line {i + 1} inside colabssh's managed block was not written by "
                                f"colabssh ({text.show(lines[i])!r}); colabssh changed nothing",
                                "move your own lines out of the block (above its start or below its end "
                                "marker), then run the command again", BAD_INPUT)
    return span


def _has_note(lines: list[bytes], span: text.Span) -> bool:
    note = CREATED_NOTE.encode()
    return any(text.content(lines[i]).strip(b" \t") == note for i in range(span.begin + 1, span.end))


def _block_lines(paths: Paths, eol: bytes, created: bool) -> list[bytes]:
    body = [BEGIN_MARKER] + ([CREATED_NOTE] if created else []) + [include_line(paths), END_MARKER]
    return [line.encode() + eol for line in body]


@lru_cache(maxsize=8)
def find_alias_collision(user_config: bytes, alias: str) -> tuple[int, str] | None:
    """The first line outside colabssh's markers whose ``Host`` names ALIAS (exactly or by a pattern
    other than a bare ``*``; negations as ssh_config has them), or whose ``Match host``/``originalhost``
    does: (1-based line number, the line). Included files are not followed. Remembered for the last few
    configs: a connect that plans again under the lock (the same bytes) does not read a long config twice."""
    lines = text.split_lines(user_config)
    try:
        span = text.find_span(lines, BEGIN_MARKER.encode(), END_MARKER.encode())
    except text.MarkerError:
        span = None
    for i, line in enumerate(lines):
        if span is not None and span.begin <= i <= span.end:
            continue
        head = line.lstrip(b" \t\f")[:5].lower()
        if not head.startswith((b"host", b"match")):  # most lines of a long config: no decoding at all
            continue
        parsed = text.keyword_and_rest(line)
        if parsed is None:
            continue
        keyword, rest = parsed
        if keyword == "host" and text.names_alias(text.split_args(rest), alias):
            return i + 1, text.show(line)
        if keyword == "match" and text.match_line_names_alias(rest, alias):
            return i + 1, text.show(line)
    return None


def _user_config_with_block(paths: Paths, old: bytes | None) -> bytes:
    path = paths.user_config
    data = old or b""
    lines = text.split_lines(data)
    span = find_block(path, lines)
    if span is None:
        eol = _eol(data)
        block = b"".join(_block_lines(paths, eol, created=old is None))
        return block + (eol + data if data else b"")
    eol = b"\r\n" if lines[span.begin].endswith(b"\r\n") else b"\n"
    wanted = _block_lines(paths, eol, created=_has_note(lines, span))
    current = lines[span.begin:span.end + 1]
    if [text.content(x).strip(b" \t") for x in current] == [text.content(x) for x in wanted]:
        return data
    if not current[-1].endswith(b"\n"):  # the end marker was the file's last line, without an ending
        wanted[-1] = wanted[-1][: -len(eol)]
    return b"".join(lines[:span.begin] + wanted + lines[span.end + 1:])


def user_config_without_block(paths: Paths, old: bytes | None) -> bytes | None:
    if old is None:
        return None
    lines = text.split_lines(old)
    span = find_block(paths.user_config, lines)
    if span is None:
        return old
    stop = span.end + 1
    if stop < len(lines) and not text.content(lines[stop]):
        stop += 1
    rest = b"".join(lines[:span.begin] + lines[stop:])
    if not rest and _has_note(lines, span):
        return None
    return rest


def own_blocks(data: bytes) -> tuple[bytes, list[tuple[str | None, bytes]]]:
    """colabssh's own config as (header, [(alias or None, block bytes without trailing blank lines)])."""
    lines = text.split_lines(data)
    starts = text.block_starts(lines)
    header = b"".join(lines[: starts[0]] if starts else lines)
    blocks: list[tuple[str | None, bytes]] = []
    for k, start in enumerate(starts):
        stop = starts[k + 1] if k + 1 < len(starts) else len(lines)
        while stop > start + 1 and text.is_blank(lines[stop - 1]):
            stop -= 1
        chunk = b"".join(lines[start:stop])
        if not chunk.endswith(b"\n"):
            chunk += b"\n"
        parsed = text.keyword_and_rest(lines[start])
        args = text.split_args(parsed[1]) if parsed and parsed[0] == "host" else []
        blocks.append((args[0] if len(args) == 1 else None, chunk))
    return header, blocks


def own_config(header: bytes, blocks: list[tuple[str | None, bytes]]) -> bytes | None:
    header = header.rstrip(b"\r\n \t")
    if not blocks and (not header or header + b"\n" == OWN_HEADER.encode()):
        return None
    parts = [(header + b"\n") if header else OWN_HEADER.encode()] + [chunk for _, chunk in blocks]
    return b"\n".join(parts)


def _own_config_with(old: bytes | None, alias: str, block: bytes) -> bytes:
    header, blocks = own_blocks(old or b"")
    for i, (name, _) in enumerate(blocks):
        if name == alias:
            blocks[i] = (alias, block)
            break
    else:
        blocks.append((alias, block))
    new = own_config(header, blocks)
    assert new is not None  # there is at least one block
    return new


def known_hosts_with(old: bytes | None, key_alias: str, host_key: str | None) -> bytes | None:
    lines = text.split_lines(old or b"")
    mine = [line for line in lines if text.pins_name(line, key_alias)]
    wanted = f"{key_alias} {host_key}\n".encode() if host_key is not None else None
    if wanted is not None and [text.content(x) for x in mine] == [wanted[:-1]]:
        return old
    kept = [line for line in lines if not text.pins_name(line, key_alias)]
    if kept and not kept[-1].endswith(b"\n"):
        kept[-1] += b"\n"
    new = b"".join(kept) + (wanted or b"")
    if old is None and not new:
        return None
    return new if new or old is None else None


def plan_connect(paths: Paths, entry: HostEntry, host_key: str | None) -> Plan:
    """Plan adding (or replacing) the session ENTRY: its Host block, its pinned host key (None: no pin,
    the session pins on first contact) and the Include block in the user's config."""
    block = render_host_entry(entry).encode()
    if entry.known_hosts != paths.known_hosts:
        raise ValueError(f"the entry's known_hosts file must be colabssh's own ({paths.known_hosts})")
    if host_key is not None and not HOST_KEY.fullmatch(host_key):
        raise ValueError(f"not a host public key line (TYPE BASE64): {host_key[:40]!r}")
    user_old = read_bytes(paths.user_config)
    user_new = _user_config_with_block(paths, user_old)
    collision = find_alias_collision(user_old or b"", entry.alias)
    if collision is not None:
        number, line = collision
        raise ColabsshError(f"{paths.user_config} line {number} already names {entry.alias!r}: {line!r}; "
                            "colabssh changed nothing",
                            "pick another name with `--name`, or rename or remove that entry of yours", BAD_INPUT)
    own_old = read_bytes(paths.config)
    own_new = _own_config_with(own_old, entry.alias, block)
    known_old = read_bytes(paths.known_hosts)
    known_new = known_hosts_with(known_old, entry.host_key_alias, host_key)
    dirs = (entry.control_dir,) if entry.control_dir is not None else ()
    return Plan({paths.known_hosts: (known_old, known_new), paths.config: (own_old, own_new),
                 paths.user_config: (user_old, user_new)}, dirs, paths.home, f"connect {entry.alias}")


def plan_forget(paths: Paths, alias: str) -> Plan:
    """Plan removing the session ALIAS: its block, its pin and, with the last session, the Include block."""
    word("the alias", alias, NAME)
    own_old = read_bytes(paths.config)
    header, blocks = own_blocks(own_old or b"")
    key_alias = pinned_alias(own_old or b"", alias)
    kept = [(name, chunk) for name, chunk in blocks if name != alias]
    known_old = read_bytes(paths.known_hosts)
    pinned = any(text.pins_name(line, key_alias) for line in text.split_lines(known_old or b""))
    user_old = read_bytes(paths.user_config)
    user_lines = text.split_lines(user_old or b"")
    find_block(paths.user_config, user_lines)
    if len(kept) == len(blocks) and not pinned:
        from ..session import did_you_mean

        raise ColabsshError(f"no session named {alias!r} in {paths.config}"
                            f"{did_you_mean(alias, [name for name, _ in blocks if name])}",
                            "see `colabssh list` for the sessions colabssh knows", BAD_INPUT)
    own_new = own_old if len(kept) == len(blocks) else own_config(header, kept)
    known_new = known_hosts_with(known_old, key_alias, None)
    # the Include goes with the last block (blocks the user added to colabssh's file keep it)
    user_new = user_config_without_block(paths, user_old) if own_new is None else user_old
    return Plan({paths.known_hosts: (known_old, known_new), paths.config: (own_old, own_new),
                 paths.user_config: (user_old, user_new)}, (), paths.home, f"forget {alias}")


def pinned_key(paths: Paths, alias: str) -> str | None:
    """The host key pinned for ALIAS in colabssh's known_hosts ("TYPE BASE64"); None when none is (or the
    file cannot be read)."""
    try:
        lines = text.split_lines(paths.known_hosts.read_bytes())
    except OSError:
        return None
    for line in lines:
        if text.pins_name(line, host_key_alias(alias)):
            fields = text.content(line).decode("latin-1").split()
            if len(fields) >= 3:
                return f"{fields[1]} {fields[2]}"
    return None


def block_settings(chunk: bytes) -> dict[str, str]:
    """A Host block's settings: lower-case keyword -> its first argument (the first line of each, as ssh reads)."""
    settings: dict[str, str] = {}
    for line in text.split_lines(chunk)[1:]:
        parsed = text.keyword_and_rest(line)
        if parsed is not None and parsed[0] not in settings:
            args = text.split_args(parsed[1])
            settings[parsed[0]] = args[0] if args else ""
    return settings


def pinned_alias(own: bytes, alias: str) -> str:
    """The HostKeyAlias the alias's block names (``colabssh-ALIAS`` when there is no block)."""
    lines = text.split_lines(own)
    found = text.host_block(lines, alias)
    if found is not None:
        for line in lines[found[0] + 1:found[1]]:
            parsed = text.keyword_and_rest(line)
            if parsed and parsed[0] == "hostkeyalias":
                args = text.split_args(parsed[1])
                if args:
                    return args[0]
    return host_key_alias(alias)


