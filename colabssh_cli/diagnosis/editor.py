"""`colabssh doctor`'s check of the editors: their CLIs on PATH and their Remote-SSH extension, when they can tell."""

from __future__ import annotations

import shutil

from ..editor import EDITORS, installed_extensions
from .report import OK, WARN, Check


def editor_checks() -> list[Check]:
    found = [(spec, cli) for spec in EDITORS.values() if (cli := shutil.which(spec.cli))]
    if not found:
        return [Check("editor", WARN, f"no editor CLI on PATH ({', '.join(EDITORS)}): `colabssh connect` prints "
                      "the command and a link to open instead",
                      "VS Code: Command Palette > 'Shell Command: Install code command in PATH'")]
    checks = []
    for spec, cli in found:
        extensions = installed_extensions(cli)
        name = f"editor {spec.name}"
        if extensions is None:
            checks.append(Check(name, OK, f"{cli} (it could not list its extensions: Remote-SSH not checked)"))
        elif not extensions.intersection(spec.remote_ssh):
            checks.append(Check(name, WARN, f"{cli} has no Remote-SSH extension: it cannot open a session",
                                f"{spec.cli} --install-extension {spec.install_id}"))
        else:
            remote_ssh = sorted(extensions.intersection(spec.remote_ssh))[0]
            checks.append(Check(name, OK, f"{cli} with {remote_ssh}"))
    return checks
