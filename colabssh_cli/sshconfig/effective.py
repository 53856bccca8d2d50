"""What OpenSSH makes of the config: the one ``ssh -G ALIAS`` check, for `connect` and `doctor` alike.

``ssh -G`` prints every option ssh would use for an alias, after every Include, Match and ``Host *`` of the
user's config. colabssh's values must win (ssh takes the first value it reads), so both `connect` (before and
after writing: ``preview_effective``, ``verify_effective``) and `doctor` (``written_options`` read back from
the Host block) compare what they want with ``effective_options`` through ``mismatches``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import BAD_INPUT, ColabsshError
from ..paths import Paths
from ..remote import process
from ..remote.runner import ssh_base, ssh_binary, ssh_config_file
from . import text
from .files import TEMP_MARK, make_private_dir, read_bytes, remove_file
from .plan import Plan, include_line
from .render import BEGIN_MARKER, END_MARKER, HostEntry, control_dirs_in_use, remove_empty_control_dir

CHECK_TIMEOUT = 60.0
Wanted = dict[str, Optional[str]]  # option (lower case) -> the value ssh must use; None: must be absent
_STRICT = {"yes": "true", "no": "false", "ask": "ask", "accept-new": "accept-new"}  # as `ssh -G` prints it
_COMPARED = ("hostname", "port", "user", "hostkeyalias", "userknownhostsfile", "stricthostkeychecking",
             "identityfile", "identitiesonly", "checkhostip", "proxycommand")
_PATH_OPTIONS = ("identityfile", "userknownhostsfile")


def effective_options(paths: Paths, alias: str, config: Optional[Path] = None) -> dict[str, list[str]]:
    """``ssh -G -F <user config> ALIAS`` (or ``-F CONFIG``): every option ssh would use, as lists of values."""
    argv = [*ssh_base(paths), "-G", alias] if config is None else [ssh_binary(), "-F", str(config), "-G", alias]
    try:
        result = process.run(argv, timeout=CHECK_TIMEOUT)
    except process.TimedOut:
        raise ColabsshError("`ssh -G` did not finish", "check ~/.ssh/config (a Match exec that hangs?)") from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip() and "Pseudo-terminal" not in line]
        detail = (lines or [f"exit code {result.returncode}"])[0]
        raise ColabsshError(f"OpenSSH cannot use the config: {detail}",
                            "fix that line; ssh, VS Code and colabssh all read this file", BAD_INPUT)
    options: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        options.setdefault(key.lower(), []).append(value)
    return options


def expected_options(entry: HostEntry) -> Wanted:
    """What `ssh -G` must show for the entry colabssh writes."""
    return {
        "hostname": entry.hostname.lower(),
        "port": str(entry.port),
        "user": entry.user,
        "hostkeyalias": entry.host_key_alias,
        "userknownhostsfile": str(entry.known_hosts),
        "stricthostkeychecking": _STRICT[entry.strict_host_key_checking],
        "identityfile": str(entry.identity_file),
        "identitiesonly": "yes",
        "checkhostip": "no",
        "proxycommand": entry.proxy_command,
        "proxyjump": None,
    }


def written_options(paths: Paths, alias: str) -> Optional[dict[str, str]]:
    """The options colabssh wrote in the alias's Host block, as `ssh -G` shows them (None: no block)."""
    try:
        lines = text.split_lines(paths.config.read_bytes())
    except OSError:
        return None
    found = text.host_block(lines, alias)
    if found is None:
        return None
    options: dict[str, str] = {}
    for line in lines[found[0] + 1:found[1]]:
        parsed = text.keyword_and_rest(line)
        if parsed is None or parsed[0] not in _COMPARED or parsed[0] in options:
            continue
        keyword, rest = parsed
        if keyword == "proxycommand":
            options[keyword] = rest.strip()
            continue
        args = text.split_args(rest)
        value = args[0] if args else ""
        if keyword in _PATH_OPTIONS:
            value = value.replace("%%", "%")
        if keyword == "hostname":
            value = value.lower()
        options[keyword] = _STRICT.get(value, value) if keyword == "stricthostkeychecking" else value
    return options


def written_mismatches(paths: Paths, alias: str, written: dict[str, str]) -> list[str]:
    """``mismatches`` of what ssh uses for ALIAS against WRITTEN (``written_options``); a proxy option colabssh did
    not write must be absent. A config ssh cannot read is a ColabsshError."""
    wanted: Wanted = {**written, "proxyjump": None}
    wanted.setdefault("proxycommand", None)
    return mismatches(effective_options(paths, alias), wanted)


def mismatches(effective: dict[str, list[str]], wanted: Wanted) -> list[str]:
    """The options where OpenSSH would not use colabssh's value, as 'name: ssh uses X, colabssh wrote Y'."""
    found = []
    for name, want in wanted.items():
        got = effective.get(name, [])
        if name == "identityfile":
            ok = want in got
        elif want is None:
            ok = not got or got == ["none"]
        else:
            ok = got[:1] == [want]
        if not ok:
            found.append(f"{name}: ssh uses {' '.join(got) or 'nothing'}, colabssh wrote {want or 'nothing'}")
    return found


def verify_effective(paths: Paths, entry: HostEntry) -> None:
    wrong = mismatches(effective_options(paths, entry.alias), expected_options(entry))
    if wrong:
        raise ColabsshError(f"`ssh -G {entry.alias}` does not use colabssh's settings ({'; '.join(wrong)})",
                            f"something in {ssh_config_file(paths)} overrides them for '{entry.alias}': "
                            "remove that setting, or connect with --name OTHER", BAD_INPUT)


@dataclass(frozen=True)
class PlannedCopies:
    """The planned files as OpenSSH would read them, before they are written: temp copies in colabssh's folder."""

    user: Path  # the planned user config, its Include pointing at ``own``
    own: Path  # colabssh's planned own config
    known_hosts: Path  # colabssh's planned known_hosts (the pin)
    real: dict[str, str]  # copy path -> the real file's path, for messages

    def real_names(self, message: str) -> str:
        """MESSAGE (ssh's words name the copies) with the real files' names, as the user knows them."""
        for copy, real in self.real.items():
            message = message.replace(copy, real)
        return message


@contextmanager
def planned_copies(paths: Paths, plan: Plan) -> Iterator[Optional[PlannedCopies]]:
    """Temp copies (0600, removed afterwards) of the planned user config, own config and known_hosts; None when the
    plan leaves no config to read. The plan's connection sharing folders that a login through the copies made go
    again afterwards when nothing is in them and no written Host block names them (a refused login leaves none)."""
    own, user = plan.files[paths.config][1], plan.files[paths.user_config][1]
    if own is None or user is None:
        yield None
        return
    missing = [folder for folder in plan.dirs if not os.path.lexists(folder)]
    try:
        with _copies(paths, plan, own, user) as copies:
            yield copies
    finally:
        _remove_unused_dirs(paths, missing)


def _remove_unused_dirs(paths: Paths, made: list[Path]) -> None:
    """Connection sharing folders made meanwhile (MADE: missing before) go again when empty and no written Host
    block names them."""
    if not made:
        return
    try:
        written = read_bytes(paths.config)
    except ColabsshError:
        return  # unreadable: every folder stays (`ssh -G` says what is wrong with the file)
    used = control_dirs_in_use(written or b"")
    for folder in made:
        if folder not in used:
            remove_empty_control_dir(folder)


@contextmanager
def _copies(paths: Paths, plan: Plan, own: bytes, user: bytes) -> Iterator[PlannedCopies]:
    known = plan.files[paths.known_hosts][1] if paths.known_hosts in plan.files else read_bytes(paths.known_hosts)
    make_private_dir(paths.root, parents=True)
    temps: list[str] = []
    try:
        own_copy = _temp_copy(paths.root, "preview-own", own, temps)
        user_copy = _temp_copy(paths.root, "preview-user", _include_swapped(paths, user, own_copy), temps)
        known_copy = _temp_copy(paths.root, "preview-known", known or b"", temps)
        yield PlannedCopies(user_copy, own_copy, known_copy,
                            {str(user_copy): str(paths.user_config), str(own_copy): str(paths.config),
                             str(known_copy): str(paths.known_hosts)})
    finally:
        for temp in temps:
            remove_file(Path(temp))


def preview_effective(paths: Paths, plan: Plan, entry: HostEntry) -> None:
    """What OpenSSH will make of the planned files, asked before they are written: ``ssh -G`` on copies of the
    planned user config and colabssh's own config (temp files in colabssh's folder, removed afterwards). A value
    that ssh would read otherwise than colabssh wrote it, whether from the code or because a setting of the
    user's wins, is refused here with every file as it was."""
    wanted = expected_options(entry)
    with planned_copies(paths, plan) as copies:
        if copies is None:
            return
        try:
            wrong = mismatches(effective_options(paths, entry.alias, config=copies.user), wanted)
            if not wrong:
                return
            alone = mismatches(effective_options(paths, entry.alias, config=copies.own), wanted)
        except ColabsshError as exc:  # ssh's message names the copy's path; the user knows the file by its own
            exc.message = copies.real_names(exc.message)
            raise
    if alone:
        raise ColabsshError(f"OpenSSH would not use what colabssh writes for '{entry.alias}' ({'; '.join(alone)}); "
                            "colabssh changed nothing",
                            "the connection code (or option) holds a value OpenSSH rewrites: copy the code the cell "
                            "printed again", BAD_INPUT)
    raise ColabsshError(f"`ssh -G {entry.alias}` would not use colabssh's settings ({'; '.join(wrong)}); "
                        "colabssh changed nothing",
                        f"something in {ssh_config_file(paths)} overrides them for '{entry.alias}': remove that "
                        "setting, or connect with --name OTHER", BAD_INPUT)


def _temp_copy(folder: Path, label: str, data: bytes, made: list[str]) -> Path:
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{label}{TEMP_MARK}")  # 0600, as ssh wants its config
    made.append(name)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return Path(name)


def _include_swapped(paths: Paths, user: bytes, own_copy: Path) -> bytes:
    """The planned user config with its managed block's Include pointing at OWN_COPY instead."""
    include = include_line(paths).encode()
    lines = text.split_lines(user)
    span = text.find_span(lines, BEGIN_MARKER.encode(), END_MARKER.encode())
    for i in range(span.begin + 1, span.end) if span is not None else ():
        if text.content(lines[i]).strip(b" \t") == include:
            ending = lines[i][len(text.content(lines[i])):]
            lines[i] = f'Include "{own_copy.as_posix()}"'.encode() + ending
    return b"".join(lines)
