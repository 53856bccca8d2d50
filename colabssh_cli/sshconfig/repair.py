"""Bring colabssh's stores back into agreement after a run that was killed, or files edited by hand.

colabssh keeps one session in four places: its ``Host`` block in ``~/.ssh/colabssh/config``, its pinned host
key in ``~/.ssh/colabssh/known_hosts``, its record in ``sessions.json``, and (for all sessions together) the
Include block at the top of ``~/.ssh/config``. connect and forget change them in one journaled transaction
(sshconfig_files.Transaction), so a run killed at any instant leaves a journal that the next run finishes.
What a journal cannot cover (files of a colabssh before 0.2, or edited by hand) is brought into agreement by
rules, each the smallest change that makes the four agree:

- a Host block of colabssh's with no session record (a connect that never finished): the block and its pin go;
- a session record with no Host block (a forget that never finished, or a block removed by hand): the record goes;
- a block and a record that describe different runtimes (host, port or user): both go, and the pin;
- a pin that is not the host key the session's connection code carried: the code's key is pinned again;
- a pin that no block names: it goes;
- an Include block with no session left: it goes, byte for byte as forget removes it;
- temporary files of a killed run (``.NAME.colabssh-tmp-*``, ``.keygen-*``): they go.

`connect`, `forget` and `doctor` run ``repair`` first, under colabssh's lock; each Repair says what disagreed
and what was done, and `doctor` shows them. Blocks the user added to colabssh's file by hand (another
HostKeyAlias) are never touched.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Optional

from ..errors import ColabsshError
from ..paths import Paths
from ..session import Session, parse_sessions, sessions_bytes
from . import text
from .apply import apply, locked
from .files import TEMP_MARK, read_bytes, resolve_target
from .plan import (
    Plan,
    block_settings,
    find_block,
    host_key_alias,
    known_hosts_with,
    own_blocks,
    own_config,
    user_config_without_block,
)
from .transaction import recover

KEYGEN_SCRATCH = ".keygen-"  # keys.SCRATCH_PREFIX (not imported: keys imports paramiko-free helpers only)


@dataclass(frozen=True)
class Repair:
    problem: str  # what disagreed, as the user would say it
    done: str  # what colabssh did about it
    alias: Optional[str] = None  # the session it concerned, if one
    removed: bool = False  # True when that session is gone now
    next_step: str = ""  # what the user may want to do next ('' when nothing)

    @property
    def line(self) -> str:
        return f"{self.problem}: {self.done}"


@dataclass
class _Stores:
    """The four stores as bytes, and the plan to change them."""

    own: Optional[bytes]
    known: Optional[bytes]
    user: Optional[bytes]
    sessions_raw: Optional[bytes]
    sessions: dict[str, Session]
    repairs: list[Repair] = field(default_factory=list)


def repair(paths: Paths) -> list[Repair]:
    """Finish a killed run's change, remove its temp files and bring the stores into agreement (under the lock)."""
    with locked(paths):
        repairs = _finish_killed_run(paths)
        repairs += _remove_leftovers(paths)
        plan, found = plan_agreement(paths)
        if plan.changed():
            apply(paths, plan)
        return repairs + found


def _finish_killed_run(paths: Paths) -> list[Repair]:
    found = recover(paths.journal)
    if not found.found:
        return []
    verb, _, alias = found.intent.partition(" ")
    what = f"`colabssh {verb} {alias}`" if verb in ("connect", "forget") else "a colabssh run"
    if found.direction == "backward" or verb not in ("connect", "forget"):
        done = "put its files back as they were" if found.direction == "backward" else "finished its change"
        return [Repair(f"{what} was killed while it wrote its files", done)]
    if verb == "forget":
        return [Repair(f"{what} was killed while it wrote its files", "finished the forget", alias, removed=True)]
    return [Repair(f"{what} was killed while it wrote its files", "finished writing them", alias,
                   next_step=f"`colabssh connect CODE --name {alias}` again checks that the login works")]


def _remove_leftovers(paths: Paths) -> list[Repair]:
    folders = {paths.ssh_dir, paths.root}
    try:
        folders.add(resolve_target(paths.user_config).parent)
    except ColabsshError:
        pass
    removed: list[str] = []
    for folder in sorted(folders):
        try:
            found = [p for p in folder.iterdir() if TEMP_MARK in p.name or
                     (folder == paths.root and p.name.startswith(KEYGEN_SCRATCH))]
        except OSError:
            continue
        for leftover in found:
            try:
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
                removed.append(leftover.name)
            except OSError:
                continue
    if not removed:
        return []
    from colab_bootstrap.units import count  # only when there is something to say: connect's import budget

    return [Repair(f"{count(len(removed), 'temporary file')} of a killed colabssh run ({', '.join(sorted(removed)[:3])}"
                   + (", ..." if len(removed) > 3 else "") + ")", "removed them")]


def plan_agreement(paths: Paths) -> tuple[Plan, list[Repair]]:
    """The change that makes the stores agree, and what it repairs (an empty plan when they already do).

    A damaged sessions.json is left to `doctor` and the commands that read it: nothing is planned then.
    """
    sessions_raw = read_bytes(paths.sessions)
    try:
        sessions = parse_sessions(paths, sessions_raw)
    except ColabsshError:
        return Plan({}), []
    known_old = read_bytes(paths.known_hosts)
    stores = _Stores(read_bytes(paths.config), known_old, read_bytes(paths.user_config), sessions_raw,
                     dict(sessions))
    header, blocks = own_blocks(stores.own or b"")
    ours = {name: chunk for name, chunk in blocks
            if name is not None and block_settings(chunk).get("hostkeyalias") == host_key_alias(name)}
    everything_ours = set(ours)
    for alias in sorted(set(ours) - set(stores.sessions)):
        _drop_block(stores, ours, alias, "its Host block has no session record (a connect that did not finish)",
                    next_step=f"`colabssh connect CODE --name {alias}` connects it again")
    for alias in sorted(set(stores.sessions) - set(ours)):
        stores.sessions.pop(alias)
        stores.repairs.append(Repair(f"session '{alias}' has no Host block (a forget that did not finish, or the "
                                     "block was removed by hand)", "forgot the session", alias, removed=True,
                                     next_step=f"`colabssh connect CODE --name {alias}` connects it again"))
    for alias in sorted(set(ours) & set(stores.sessions)):
        session, settings = stores.sessions[alias], block_settings(ours[alias])
        if not _same_runtime(session, settings):
            stores.sessions.pop(alias)
            _drop_block(stores, ours, alias, "its Host block and its session record describe different runtimes "
                        "(a connect that did not finish)",
                        next_step=f"`colabssh connect CODE --name {alias}` with the cell's latest code")
        elif session.hostkey and _pin(stores.known, host_key_alias(alias)) != session.hostkey:
            stores.known = known_hosts_with(stores.known, host_key_alias(alias), session.hostkey)
            stores.repairs.append(Repair(f"session '{alias}': the pinned host key is not the one its connection "
                                         "code carried", "pinned the code's key again", alias))
    kept = [(name, chunk) for name, chunk in blocks if name is None or name not in everything_ours or name in ours]
    _drop_orphan_pins(stores, kept)
    new_own = stores.own if len(kept) == len(blocks) else own_config(header, kept)
    new_user = stores.user
    if new_own is None and stores.user is not None and _has_include_block(paths, stores.user):
        new_user = user_config_without_block(paths, stores.user)
        stores.repairs.append(Repair(f"{paths.user_config} includes colabssh's file but no session is left",
                                     "removed colabssh's Include block (your own lines are as they were)"))
    new_sessions = sessions_raw if stores.sessions == sessions else sessions_bytes(stores.sessions)
    plan = Plan({paths.known_hosts: (known_old, stores.known),
                 paths.config: (stores.own, new_own), paths.user_config: (stores.user, new_user),
                 paths.sessions: (sessions_raw, new_sessions)}, (), paths.home)
    return plan, stores.repairs


def _has_include_block(paths: Paths, user: bytes) -> bool:
    """Whether the user's config has colabssh's Include block (malformed markers: not judged here; the command
    that reads them, or doctor's `ssh config` row, says what is wrong)."""
    try:
        return find_block(paths.user_config, text.split_lines(user)) is not None
    except ColabsshError:
        return False


def _drop_block(stores: _Stores, ours: dict[str, bytes], alias: str, why: str, next_step: str) -> None:
    key_alias = block_settings(ours[alias]).get("hostkeyalias", host_key_alias(alias))
    stores.known = known_hosts_with(stores.known, key_alias, None)
    ours.pop(alias)
    stores.repairs.append(Repair(f"session '{alias}': {why}", "removed its Host block and pinned key", alias,
                                 removed=True, next_step=next_step))


def _drop_orphan_pins(stores: _Stores, kept: list[tuple[Optional[str], bytes]]) -> None:
    named = {block_settings(chunk).get("hostkeyalias", "") for _, chunk in kept}
    for line in text.split_lines(stores.known or b""):
        names = text.known_host_names(line)
        if names is None or names.startswith("|") or any(name in named for name in names.split(",")):
            continue
        stores.known = known_hosts_with(stores.known, names.split(",")[0], None)
        stores.repairs.append(Repair(f"a pinned host key for {names.split(',')[0]!r} belongs to no session",
                                     "removed it"))


def _pin(known: Optional[bytes], key_alias: str) -> Optional[str]:
    for line in text.split_lines(known or b""):
        if text.pins_name(line, key_alias):
            fields = text.content(line).decode("latin-1").split()
            return f"{fields[1]} {fields[2]}" if len(fields) >= 3 else None
    return None


def _same_runtime(session: Session, settings: dict[str, str]) -> bool:
    return (settings.get("hostname", "").lower() == session.host.lower()
            and settings.get("port", "22") == str(session.port)
            and settings.get("user", "") == session.user)


def dropped(repairs: list[Repair], alias: str) -> bool:
    """Whether the repairs removed session ALIAS (e.g. finished a forget of it that was cut short)."""
    return any(r.alias == alias and r.removed for r in repairs)

