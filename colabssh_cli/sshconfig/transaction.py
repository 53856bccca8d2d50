"""One journaled change to several files: staged, applied in order, undone or finished after a crash (``recover``)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ColabsshError
from .files import (
    TEMP_MARK,
    atomic_write,
    fsync_dir,
    group_to_keep,
    io_error,
    unlink_quietly,
    write_temp,
)


@dataclass
class _Staged:
    path: Path  # as the user knows it (for messages)
    target: Path  # the file behind it (symlinks resolved)
    old: bytes | None
    new: bytes | None
    new_tmp: str = ""  # the new bytes, ready to be renamed over the target
    old_tmp: str = ""  # a copy of the old bytes, to rename back if a later file fails
    committed: bool = False

    def as_record(self) -> dict[str, str | None]:
        return {"target": str(self.target), "new_tmp": self.new_tmp or None, "old_tmp": self.old_tmp or None,
                "old": _digest(self.old), "new": _digest(self.new)}


def _digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()



def _swap_in(target: Path, data: bytes | None, tmp: str) -> str:
    """Make TARGET the staged temp file TMP (renamed over it), or remove it when DATA is None; the temp
    file is then used up, so this returns what the caller's temp path becomes: ""."""
    if data is None:
        os.unlink(target)
        return tmp
    os.replace(tmp, target)
    return ""

class Transaction:
    """Write several files all or nothing, even across a SIGKILL.

    Stage: every new version and a copy of every old one go to temp files next to their targets;
    a failure here has changed nothing visible. Journal: the list of targets with their temp files
    and the digests of their old and new bytes goes to JOURNAL (atomically) before the first rename.
    Commit: renames and unlinks only, in order; a failure (or an interrupt) renames the old copies
    back. Then the journal and the leftover temp files go. A run killed between journal and the end
    is finished by the next one (``recover``): it completes the renames the journal lists (or undoes
    them, when the run died while rolling back), so the files never stay half changed.
    """

    def __init__(self, journal: Path | None = None, intent: str = "") -> None:
        self._staged: list[_Staged] = []
        self._journal = journal
        self._intent = intent

    def stage(self, path: Path, target: Path, old: bytes | None, new: bytes | None, mode: int) -> None:
        item = _Staged(path, target, old, new)
        self._staged.append(item)
        gid = group_to_keep(target)
        try:
            if new is not None:
                item.new_tmp = write_temp(target.parent, target.name, new, mode, gid)
            if old is not None:
                item.old_tmp = write_temp(target.parent, target.name, old, mode, gid)
        except OSError as exc:
            raise io_error("write", path, exc) from None

    def commit(self, check: Callable[[Path, bytes | None], None]) -> None:
        """Put every staged file in place; CHECK(path, old) runs just before each (compare-and-swap)."""
        try:
            for item in self._staged:
                check(item.path, item.old)
            self._write_journal(FORWARD)
            for item in self._staged:
                check(item.path, item.old)
                try:
                    item.new_tmp = _swap_in(item.target, item.new, item.new_tmp)
                except OSError as exc:
                    raise io_error("remove" if item.new is None else "write", item.path, exc) from None
                item.committed = True
        except BaseException:
            self._roll_back()
            raise
        finally:
            self._discard()
        for folder in {item.target.parent for item in self._staged}:
            fsync_dir(folder)

    def abort(self) -> None:
        self._discard()

    def _write_journal(self, direction: str) -> None:
        if self._journal is None:
            return
        body = json.dumps({"version": 1, "direction": direction, "intent": self._intent,
                           "items": [item.as_record() for item in self._staged]}, indent=1)
        try:
            atomic_write(self._journal, body.encode("utf-8"), 0o600)
        except ColabsshError:
            if direction == FORWARD:
                raise  # nothing renamed yet: the caller's files are as they were
            # rolling back: go on without it (the next run then finds the forward journal)

    def _roll_back(self) -> None:
        if any(item.committed for item in self._staged):
            self._write_journal(BACKWARD)
        for item in reversed(self._staged):
            if not item.committed:
                continue
            try:
                item.old_tmp = _swap_in(item.target, item.old, item.old_tmp)
            except OSError:
                pass  # best effort: that file then keeps its new (complete) version

    def _discard(self) -> None:
        for item in self._staged:
            for tmp in (item.new_tmp, item.old_tmp):
                if tmp:
                    unlink_quietly(tmp)
            item.new_tmp = item.old_tmp = ""
        if self._journal is not None:
            unlink_quietly(str(self._journal))
            fsync_dir(self._journal.parent)


FORWARD, BACKWARD = "forward", "backward"


@dataclass(frozen=True)
class Recovered:
    """What ``recover`` found: the killed run's intent ('' when unknown), its direction, and the files it changed."""

    intent: str = ""
    direction: str = ""
    changed: tuple[Path, ...] = ()
    found: bool = False


def recover(journal: Path) -> Recovered:
    """Finish the transaction a killed run left in JOURNAL; return the files it changed. Call under the lock.

    Forward: every target still holding its old bytes gets its new ones (the staged temp file renamed in,
    or the file removed); backward (the run died rolling back): every target holding its new bytes gets
    its old ones back. A target that holds neither (someone edited it since) is left alone. Then the
    journal and its temp files go.
    """
    try:
        record = json.loads(journal.read_bytes().decode("utf-8"))
        direction = record["direction"]
        intent = str(record.get("intent", ""))
        items = list(record["items"])
    except FileNotFoundError:
        return Recovered()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        unlink_quietly(str(journal))  # a journal cut short was never acted on: nothing was renamed
        return Recovered(found=True)
    changed: list[Path] = []
    for item in items:
        try:
            target = Path(item["target"])
            want, have_tmp = (("new", item.get("new_tmp")) if direction == FORWARD else ("old", item.get("old_tmp")))
            unwanted = "old" if want == "new" else "new"
            if _current_digest(target) == item[unwanted] and item[unwanted] != item[want]:
                if item[want] is None:
                    os.unlink(target)
                    changed.append(target)
                elif have_tmp and _current_digest(Path(have_tmp)) == item[want]:
                    os.replace(have_tmp, target)
                    changed.append(target)
        except (OSError, KeyError, TypeError):
            continue
    for item in items:
        for tmp in (item.get("new_tmp"), item.get("old_tmp")) if isinstance(item, dict) else ():
            if isinstance(tmp, str) and TEMP_MARK in tmp:
                unlink_quietly(tmp)
    unlink_quietly(str(journal))
    for folder in {path.parent for path in changed} | {journal.parent}:
        fsync_dir(folder)
    return Recovered(intent, direction, tuple(changed), True)


def _current_digest(path: Path) -> str | None:
    """The SHA-256 of a regular file's bytes; None when missing; "" for anything that is not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        digest = hashlib.sha256()
        while chunk := os.read(fd, 1 << 16):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


