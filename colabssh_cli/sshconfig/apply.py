"""Write a Plan under the lock: check nothing changed since planning, then one journaled transaction."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..paths import Paths
from .files import (
    PlanOutdated,
    check_owner,
    clean_stale_temps,
    kept_mode,
    make_private_dir,
    read_bytes,
    resolve_target,
    stale_temps,
)
from .lock import lock_file
from .plan import Plan
from .render import ensure_control_dir
from .transaction import Transaction, recover

# ---------------------------------------------------------------------------------------- apply


@contextmanager
def locked(paths: Paths) -> Iterator[None]:
    """colabssh's lock (``~/.ssh/colabssh/lock``, lock.py): one writer at a time; re-entrant in a process."""
    with lock_file(paths.lock, folders=(paths.ssh_dir, paths.root), legacy=paths.legacy_lock):
        yield


def apply(paths: Paths, plan: Plan, *, backup: bool = True) -> list[Path]:
    """Write PLAN under the lock; return the paths written or removed (a backup of the user's config,
    when one was made, comes first: backups.py). Writes nothing at all when the plan changes nothing.
    BACKUP=False: no backup (an undo puts back bytes that the change's own backup holds).

    Raises PlanOutdated when a file is no longer what the plan read (plan again, or use
    apply_with_retry); ColabsshError for anything that stops the write, with every file as it was.
    """
    if not plan.changed():
        targets = [resolve_target(path) for path in plan.files]
        if paths.journal.exists() or any(stale_temps(t.parent, t.name) for t in targets):  # a killed run's
            with locked(paths):
                if recover(paths.journal).changed:
                    raise PlanOutdated(paths.journal)  # it finished a change: the plan saw the files before
                for target in targets:
                    clean_stale_temps(target.parent, target.name)
        return []
    with locked(paths):
        return _apply_locked(paths, plan, backup)


def apply_with_retry(paths: Paths, make_plan: Callable[[], Plan], attempts: int = 5) -> list[Path]:
    """Take the lock, plan and apply inside it (re-planning when another program wrote meanwhile)."""
    with locked(paths):
        for _ in range(attempts - 1):
            try:
                return apply(paths, make_plan())
            except PlanOutdated:
                continue
        return apply(paths, make_plan())


def _apply_locked(paths: Paths, plan: Plan, backup: bool) -> list[Path]:
    changes = [(path, old, new) for path, (old, new) in plan.files.items() if old != new]
    check_owner(paths.home, paths.ssh_dir)
    recover(paths.journal)  # a killed run's change first: then the plan's old bytes are checked against whole files

    def unchanged_since_planned(path: Path, old: bytes | None) -> None:
        if read_bytes(path) != old:
            raise PlanOutdated(path)

    for path, old, _ in changes:
        unchanged_since_planned(path, old)
    targets = {path: resolve_target(path) for path in plan.files}
    for target in targets.values():
        clean_stale_temps(target.parent, target.name)
    modes = {path: kept_mode(path, targets[path], user_file=path == paths.user_config) for path, _, _ in changes}
    for folder in (paths.ssh_dir, paths.root):
        make_private_dir(folder)
    for folder in plan.dirs:
        ensure_control_dir(folder)
    written: list[Path] = []
    transaction = Transaction(paths.journal, plan.intent)
    try:
        for path, old, new in changes:
            if new is None and os.path.islink(path):
                new = b""  # never replace a user's link by nothing: empty its target instead
            transaction.stage(path, targets[path], old, new, modes[path])
        user_old = plan.files.get(paths.user_config, (None, None))[0]
        if backup and user_old is not None and paths.user_config in {p for p, _, _ in changes}:
            from .backups import back_up  # lazily: only a change of the user's config loads it

            kept = back_up(paths.user_config, user_old)
            if kept is not None:
                written.append(kept)
    except BaseException:
        transaction.abort()
        raise
    transaction.commit(unchanged_since_planned)
    return written + [path for path, _, _ in changes]
