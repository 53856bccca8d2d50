"""connect's transaction on the files, and its exact inverse: apply a plan once ``ssh -G`` agrees, check it with
OpenSSH and put the files back when a check fails (``apply_and_verify``); `forget` (``forget``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

from ..errors import BAD_INPUT, UNREACHABLE, ColabsshError
from ..paths import Paths
from ..remote import process
from ..remote.colab_log import drop_log, log_path
from ..remote.runner import close_shared_connection, explain_ssh_failure, ssh_binary, ssh_config_file
from ..session import Session, load_sessions, planned_sessions, validate_alias, with_session, without_session
from ..sshconfig.apply import apply, apply_with_retry
from ..sshconfig.effective import preview_effective, verify_effective
from ..sshconfig.files import read_bytes, remove_file
from ..sshconfig.plan import Plan, plan_connect, plan_forget
from ..sshconfig.render import HostEntry, remove_unused_control_dirs
from ..sshconfig.text import host_block, split_lines

Report = Callable[[str], None]
CHECK_TIMEOUT = 60.0


def planned(make: Callable[[], Plan]) -> Plan:
    """A plan, with the renderer's refusal of a value (ValueError) turned into one clear line."""
    try:
        return make()
    except ValueError as exc:
        raise ColabsshError(f"colabssh will not write this into an ssh config: {exc}",
                            "use plain host names, user names and folder names", BAD_INPUT) from None


def undo(paths: Paths, plan: Plan, written: list[Path]) -> None:
    """Put the files back to the bytes they had before `plan` was applied (WRITTEN: what apply returned). The
    undo makes no backup of its own: the one the change made holds the very bytes put back. When that was the
    user's original (colabssh's first change, now undone), it goes too: the next change is the first again.
    A connection sharing folder the change made, empty and named by no Host block now, goes as well."""
    from ..sshconfig.backups import original_of  # lazily: the commands that never undo do not load it

    reverse = plan.reversed()
    if reverse.changed():
        apply(paths, reverse, backup=False)
    original = original_of(paths.user_config)
    if original in written:
        remove_file(original)
    _tidy_control_dirs(paths, lambda line: None)


def openssh_login(paths: Paths, alias: str, config: Optional[Path] = None,
                  options: Sequence[str] = ()) -> process.Finished:
    """``ssh -F CONFIG -o BatchMode=yes [OPTIONS] -T ALIAS true`` (CONFIG: the user's config). With the Host block's
    ControlMaster, the login that opens the alias's shared connection, or a ride on it. Raises process.TimedOut."""
    argv = [ssh_binary(), "-F", str(config or ssh_config_file(paths)), "-o", "BatchMode=yes", *options, "-T",
            alias, "true"]
    return process.run(argv, timeout=CHECK_TIMEOUT)


def openssh_failure(alias: str, returncode: int, stderr: str, note: str = "") -> ColabsshError:
    """OpenSSH failed where colabssh's own check (paramiko's) logs in: a setting of the user's breaks it."""
    error = explain_ssh_failure(alias, returncode, stderr)
    detail = (stderr.strip().splitlines() or [""])[-1]
    hint = error.hint or "look for a setting in ~/.ssh/config that applies to every host"
    return ColabsshError(f"OpenSSH could not log in where colabssh's own check could: {error.message}"
                         + (f" [{detail}]" if detail and detail not in error.message else ""),
                         f"{hint}; {note}" if note else hint, UNREACHABLE)


def openssh_timeout(alias: str) -> ColabsshError:
    return ColabsshError(f"`ssh {alias} true` did not finish within {CHECK_TIMEOUT:.0f} s",
                         "the tunnel may be down: re-run the cell in Colab", UNREACHABLE)


def confirm_with_openssh(paths: Paths, alias: str) -> None:
    """``ssh -F <user config> -o BatchMode=yes ALIAS true``: what works here works for VS Code."""
    try:
        result = openssh_login(paths, alias)
    except process.TimedOut:
        raise openssh_timeout(alias) from None
    if result.returncode != 0:
        raise openssh_failure(alias, result.returncode, result.stderr)


def apply_and_verify(paths: Paths, entry: HostEntry, pin: Optional[str], login_check: Optional[Callable[[], None]],
                     before_undo: Callable[[], object] = lambda: None, session: Optional[Session] = None,
                     first_plan: Optional[Plan] = None) -> list[Path]:
    """Write ENTRY, PIN and SESSION (its record in sessions.json) as one transaction under the lock, once
    ``ssh -G`` on the planned files agrees; then check what OpenSSH makes of the written files and run
    LOGIN_CHECK (None: no login). If a check fails, BEFORE_UNDO runs, the files go back to the bytes they had,
    and the error says so. Returns the paths written (none when the files were already so).

    FIRST_PLAN: the same change, planned (sessions.json included) and previewed already (``planned_change``); it
    is applied first, and planned again only when a file changed since (another program wrote meanwhile)."""
    applied: list[Plan] = []

    def make_plan() -> Plan:
        if first_plan is not None and not applied:
            applied.append(first_plan)
            return first_plan
        fresh = planned_change(paths, planned(lambda: plan_connect(paths, entry, pin)), entry, session)
        applied.append(fresh)
        return fresh

    written = list(apply_with_retry(paths, make_plan) or [])
    try:
        verify_effective(paths, entry)
        if login_check is not None:
            login_check()
    except (ColabsshError, KeyboardInterrupt) as exc:  # Ctrl-C during the login check: the files go back too
        if applied and written:
            before_undo()
            try:
                undo(paths, applied[-1], written)
                note = "colabssh put its files back as they were"
            except ColabsshError as undo_error:
                note = f"colabssh could not put its files back: {undo_error.message}"
            if isinstance(exc, ColabsshError):
                exc.hint = f"{exc.hint}; {note}" if exc.hint else note
        raise
    return written


def planned_change(paths: Paths, plan: Plan, entry: HostEntry, session: Optional[Session]) -> Plan:
    """PLAN (plan_connect's) with SESSION's record in sessions.json (None: no record), refused here when ``ssh -G``
    on the planned files would not use colabssh's values: what ``apply_and_verify`` takes as its FIRST_PLAN."""
    full = plan if session is None else plan.with_file(paths.sessions, *planned_sessions(paths, with_session(session)))
    if full.changed():
        preview_effective(paths, full, entry)
    return full


def _known(paths: Paths, alias: str) -> bool:
    """Whether ALIAS has a session record or a Host block (read without the lock: a hint, not a decision)."""
    try:
        return alias in load_sessions(paths) or host_block(split_lines(paths.config.read_bytes()), alias) is not None
    except (ColabsshError, OSError):
        return False


def forget(alias: str, paths: Optional[Paths] = None, report: Report = lambda line: None) -> list[Path]:
    """The exact inverse of connect: close the shared connection, then remove the block, the pin and the session
    in one transaction (the Include block with the last session). REPORT gets one line per thing done, saying
    what happened to each file; the paths written or removed are returned.

    It first finishes what a killed run left (repair.py); when that already removed ALIAS (a forget of it that
    was cut short), the forget is done. The connection sharing folders no session names any more go when empty."""
    from ..sshconfig.repair import dropped, repair

    paths = paths or Paths.from_env()
    validate_alias(alias)
    known_before = _known(paths, alias)
    repairs = repair(paths)
    for fixed in repairs:
        report(f"repaired: {fixed.line}")  # said here too: repair_first would hide which alias went
    if not _known(paths, alias) and (known_before or dropped(repairs, alias)):
        drop_log(paths, alias)
        _tidy_control_dirs(paths, report)
        return []
    plan_forget(paths, alias)  # an unknown alias or malformed markers: refused before anything is closed
    written: list[Path] = []
    if close_shared_connection(paths, alias):
        report(f"closed the shared connection of '{alias}'")
    plans: list[Plan] = []

    def make_plan() -> Plan:
        plan = plan_forget(paths, alias)
        plans.append(plan.with_file(paths.sessions, *planned_sessions(paths, without_session(alias))))
        return plans[-1]

    written += list(apply_with_retry(paths, make_plan) or [])
    for line in forget_lines(paths, alias, plans[-1], written):
        report(line)
    if drop_log(paths, alias):
        written.append(log_path(paths, alias))
        report(f"removed {log_path(paths, alias)}")
    _tidy_control_dirs(paths, report)
    return written


def _tidy_control_dirs(paths: Paths, report: Report) -> None:
    try:
        own = read_bytes(paths.config)
    except ColabsshError:
        return
    for folder in remove_unused_control_dirs(paths, own):
        report(f"removed the empty connection sharing folder {folder}")


def forget_lines(paths: Paths, alias: str, plan: Plan, written: list[Path]) -> list[str]:
    """What forget did to each file, in words (WRITTEN: what apply returned; a backup comes first)."""
    from ..sshconfig.backups import ORIGINAL_MARK  # lazily, as in undo

    lines = []
    for path in written:
        if path.name.endswith(ORIGINAL_MARK):
            lines.append(f"kept your original {paths.user_config} in {path}")
        elif path not in plan.files:
            lines.append(f"kept the previous {paths.user_config} in {path}")
    gone = {path for path, (old, new) in plan.files.items() if old is not None and new is None}
    words = {
        paths.config: (f"removed the Host {alias} block from {paths.config}",
                       f"removed {paths.config} (the Host {alias} block was its last)"),
        paths.known_hosts: (f"removed the pinned host key of '{alias}' from {paths.known_hosts}",
                            f"removed {paths.known_hosts} ('{alias}' was its last pinned key)"),
        paths.user_config: (f"removed colabssh's Include block from {paths.user_config} (your own lines are as "
                            "they were)", f"removed {paths.user_config} (colabssh had created it)"),
        paths.sessions: (f"removed '{alias}' from {paths.sessions}", f"removed {paths.sessions} ('{alias}' was "
                         "its last session)"),
    }
    for path in plan.files:
        if path in written and path in words:
            lines.append(words[path][path in gone])
    return lines
