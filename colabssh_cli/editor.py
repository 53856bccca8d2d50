"""Open VS Code (or Cursor, VSCodium) on the runtime through Remote-SSH.

The editor CLI gets an argv list (no shell): ``code --folder-uri
vscode-remote://ssh-remote+ALIAS/CONTENT``. A missing CLI is not an error: the
command and a clickable ``vscode://vscode-remote/ssh-remote+ALIAS/...`` link are
shown instead. When the CLI can list its extensions and Remote-SSH is not among
them, colabssh says how to install it rather than open a window that cannot connect.

colabssh does not edit VS Code's settings.json (JSON with comments, the user's own
file): VS Code asks once which platform the host runs; the answer is "Linux".
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import quote

from .remote import process

LIST_TIMEOUT = 30.0
LAUNCH_TIMEOUT = 60.0


@dataclass(frozen=True)
class EditorSpec:
    name: str
    cli: str
    scheme: str  # the editor's own URL scheme, for the clickable link
    remote_ssh: tuple[str, ...]  # extension ids that provide Remote-SSH
    install_id: str


EDITORS: dict[str, EditorSpec] = {
    "code": EditorSpec("code", "code", "vscode", ("ms-vscode-remote.remote-ssh",), "ms-vscode-remote.remote-ssh"),
    "cursor": EditorSpec("cursor", "cursor", "cursor", ("anysphere.remote-ssh", "ms-vscode-remote.remote-ssh"),
                         "anysphere.remote-ssh"),
    "codium": EditorSpec("codium", "codium", "vscodium", ("jeanp413.open-remote-ssh",), "jeanp413.open-remote-ssh"),
}


@dataclass
class EditorOutcome:
    editor: str
    argv: list[str]
    link: str
    launched: bool = False
    notes: list[str] = field(default_factory=list)


def folder_uri(alias: str, folder: str) -> str:
    return f"vscode-remote://ssh-remote+{alias}{quote(folder, safe='/')}"


def open_link(spec: EditorSpec, alias: str, folder: str) -> str:
    return f"{spec.scheme}://vscode-remote/ssh-remote+{alias}{quote(folder, safe='/')}"


def editor_argv(spec: EditorSpec, alias: str, folder: str, cli: Optional[str] = None) -> list[str]:
    return [cli or spec.cli, "--folder-uri", folder_uri(alias, folder)]


def installed_extensions(cli: str) -> Optional[set[str]]:
    """The CLI's extension ids (lower case), or None when it cannot tell."""
    try:
        listed = process.run([cli, "--list-extensions"], timeout=LIST_TIMEOUT)
    except (OSError, process.TimedOut):
        return None
    if listed.returncode != 0:
        return None
    return {line.strip().lower() for line in listed.stdout.splitlines() if line.strip()}


def open_editor(editor: str, alias: str, folder: str, report: Callable[[str], None]) -> EditorOutcome:
    """Open the editor on ALIAS:FOLDER; never raises for a missing or failing editor."""
    spec = EDITORS[editor]
    outcome = EditorOutcome(editor, editor_argv(spec, alias, folder), open_link(spec, alias, folder))
    shown = " ".join(outcome.argv)
    cli = shutil.which(spec.cli)
    if cli is None:
        outcome.notes += [f"the `{spec.cli}` command is not on PATH; open the session with:", f"  {shown}",
                          f"  or the link {outcome.link}"]
        return outcome
    extensions = installed_extensions(cli)
    if extensions is not None and not extensions.intersection(spec.remote_ssh):
        outcome.notes += [f"{spec.name} has no Remote-SSH extension; install it with:",
                          f"  {spec.cli} --install-extension {spec.install_id}", f"then run: {shown}"]
        return outcome
    outcome.argv = editor_argv(spec, alias, folder, cli)
    report(f"opening {spec.name} on {alias}:{folder}")
    try:
        launched = process.run(outcome.argv, timeout=LAUNCH_TIMEOUT)
    except (OSError, process.TimedOut) as exc:
        why = "TimeoutExpired" if isinstance(exc, process.TimedOut) else type(exc).__name__  # as it always said
        outcome.notes += [f"could not start {spec.cli} ({why}); open the session with:",
                          f"  {shown}", f"  or the link {outcome.link}"]
        return outcome
    if launched.returncode != 0:
        detail = (launched.stderr.strip().splitlines() or [f"exit code {launched.returncode}"])[-1]
        outcome.notes += [f"{spec.cli} failed ({detail}); open the session with:", f"  {shown}",
                          f"  or the link {outcome.link}"]
        return outcome
    outcome.launched = True
    outcome.notes.append(f"if {spec.name} asks which platform '{alias}' runs, answer Linux")
    return outcome
