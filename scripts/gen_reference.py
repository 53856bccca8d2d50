#!/usr/bin/env python3
"""Generate docs/reference.md: every command of the typer app (its help, usage, arguments and options), the exit
codes from colabssh_cli/errors.py, and what is tested on which platform.

    scripts/gen_reference.py           write docs/reference.md
    scripts/gen_reference.py --check   exit 1 (and write nothing) when docs/reference.md is out of date

tests/test_reference.py fails when the file is out of date: run this script after changing a command.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference.md"
ERRORS = ROOT / "colabssh_cli" / "errors.py"

sys.path.insert(0, str(ROOT))

_EXIT_CODE = re.compile(r"^([A-Z][A-Z_]*) = ([0-9]+)[ \t]*(?:#[ \t]*(.*))?$", re.MULTILINE)
_UNCOMMENTED = {"OK": "success", "INTERRUPTED": "interrupted (Ctrl-C, or SIGTERM where noted)"}

HEADER = """\
# Command reference

Generated from the typer app by `scripts/gen_reference.py`; do not edit by hand (`tests/test_reference.py`
fails when this file is out of date). `colabssh COMMAND -h` shows the same text in the terminal.

Conventions, for every command: results go to stdout and progress and status to stderr; `--json`
(on `list`, `status`, `sync`, `restore`, `pull`, `push`, `demo` and `doctor`) prints JSON and nothing
else on stdout; `NO_COLOR=1` turns colours off; an error is one line `colabssh: error: ...` on stderr,
usually followed by one `  hint: ...` line, and a non-zero exit code (below).
"""

EXIT_NOTES = """\
Commands that run something else pass its exit code on where it says more:

- `sync`, `restore`, `pull`, `push`: rsync's own exit code when rsync failed (e.g. 23: some files
  were not copied, 24: files vanished while copying, 30: timeout), with rsync's meaning as the hint;
  see [Troubleshooting](troubleshooting.md#sync-exit-codes).
- `ssh`: the remote command's exit code (255 when ssh itself failed).
- `demo`: 1 when a check failed, 4 when the runtime has no torch.
- `doctor`: 1 when a check failed (warnings do not count).
- `forward`: 0 after Ctrl-C (SIGINT) or SIGTERM, which is how it is meant to stop.
- Usage errors (an unknown option, a missing argument) exit 2 with typer's usage message.
"""

PLATFORMS = """\
## Platforms

**What is tested where.** Every test runs on Linux (Debian 12: OpenSSH 9.2, rsync 3.2, Python 3.11), against
real OpenSSH (sshd and ssh), rsync, paramiko, pyngrok's own code and torch on the CPU; only the internet and
Colab (the ngrok agent, cloudflared, `google.colab`, `nvidia-smi`, the editor CLI) are stand-ins. The runtime
side (`colab_bootstrap`, the cell) runs on Colab, which is Linux. The laptop side is written for Linux, macOS
and Windows 10+ (OpenSSH client 7.3 or newer), but macOS and Windows are not tested by the suite. `colabssh
try` runs an sshd on this machine, so it needs Linux (or macOS with OpenSSH's sshd).

**Portability on the laptop side.** Paths go through `pathlib`; every path colabssh writes into an ssh config
is absolute, with forward slashes. The POSIX-only calls, and what happens without them:
"""

POSIX_CALLS = [  # (where, the POSIX call, what happens elsewhere)
    ("`sshconfig/lock.py` (the lock around config changes)", "`fcntl.flock`", "`msvcrt.locking`"),
    ("`sshconfig/render.py`, `sshconfig/files.py` (owner checks, the short socket folder)",
     "`os.geteuid`, `os.getegid`", "guarded with `hasattr`: the checks are skipped"),
    ("`sshconfig/files.py` (atomic writes)", "`os.fchmod`, `os.fchown`, `fsync` of a folder",
     "guarded: `os.chmod` after the write; no folder fsync"),
    ("`remote/runner.py`, `connection/` (connection sharing)", "`ControlMaster` (Unix sockets)",
     "off: each command makes its own connection"),
    ("`transfer/client.py` (`pull`, `push`)", "the `rsync` program", "`scp` when there is no rsync"),
    ("`remote/keys.py` (the client key)", "`os.chmod(0600)`",
     "only the read-only bit exists; OpenSSH for Windows checks the file's ACL, which `ssh-keygen` sets"),
    ("`diagnosis/` (file modes, owners)", "`stat` modes, `os.geteuid`", "the mode checks are skipped"),
    ("`remote/forwarding.py` (Ctrl-C)", "SIGINT ignored while ssh starts, a SIGTERM handler",
     "`signal.signal` exists for both; Ctrl-C also reaches ssh, which ends the forward either way"),
    ("`connection/colab_bridge.py` (`connect --via colab-cli`)", "`start_new_session` for the `colab` bridge",
     "ignored there; Google's `colab` CLI runs on Linux and macOS only"),
    ("`sandbox.py` (`colabssh try`)", "`os.geteuid()` when no sshd is found",
     "guarded (no root check); `try` needs a local sshd, so it runs on Linux and macOS only"),
]


def app_command() -> tuple[Any, Any]:
    """The click group typer builds from colabssh's app, and its context."""
    import typer

    from colabssh_cli.app import app

    root = typer.main.get_command(app)
    return root, root.make_context("colabssh", [], resilient_parsing=True)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def params_table(records: list[tuple[str, str]]) -> list[str]:
    lines = ["| Argument or option | Help |", "| --- | --- |"]
    for names, help_text in records:
        lines.append(f"| `{_cell(names)}` | {_cell(help_text)} |")
    return lines


def _records(command: Any, ctx: Any) -> list[tuple[str, str]]:
    records = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is not None:
            records.append((record[0], record[1] or ""))
    return records


def command_section(name: str, command: Any, parent: Any) -> list[str]:
    ctx = command.make_context(name, [], parent=parent, resilient_parsing=True)
    usage = " ".join(["colabssh", name, *command.collect_usage_pieces(ctx)])
    lines = [f"## `colabssh {name}`", "", "```", usage, "```", ""]
    lines += [inspect.cleandoc(command.help or ""), ""]
    lines += params_table(_records(command, ctx)) + [""]
    return lines


def exit_codes(source: str) -> list[tuple[int, str, str]]:
    """(code, NAME, meaning) from errors.py's ``NAME = N  # meaning`` lines, in the file's order."""
    return [(int(code), name, (comment or _UNCOMMENTED.get(name, "")).strip())
            for name, code, comment in _EXIT_CODE.findall(source)]


def render() -> str:
    root, ctx = app_command()
    names = root.list_commands(ctx)
    lines = [HEADER, "## Commands", "", "| Command | What it does |", "| --- | --- |"]
    for name in names:
        lines.append(f"| [`{name}`](#colabssh-{name}) | {_cell(root.get_command(ctx, name).get_short_help_str(300))} |")
    lines += ["", "## `colabssh` (the program itself)", "", "```",
              " ".join(["colabssh", *root.collect_usage_pieces(ctx)]), "```", "", inspect.cleandoc(root.help or ""), ""]
    lines += params_table(_records(root, ctx))
    lines += ["", "Shell completion is typer's: `colabssh --install-completion` adds it to your shell's startup file "
              "(bash, zsh, fish, PowerShell); `colabssh --show-completion` prints it instead.", ""]
    for name in names:
        lines += command_section(name, root.get_command(ctx, name), ctx)
    lines += ["## Exit codes", "",
              "One table, from `colabssh_cli/errors.py` (the source of these numbers):", "",
              "| Code | Name | Meaning |", "| --- | --- | --- |"]
    for code, name, meaning in exit_codes(ERRORS.read_text(encoding="utf-8")):
        lines.append(f"| {code} | `{name}` | {_cell(meaning)} |")
    lines += ["", EXIT_NOTES, PLATFORMS, "| Where | POSIX call | Elsewhere (Windows) |", "| --- | --- | --- |"]
    lines += [f"| {where} | {call} | {fallback} |" for where, call, fallback in POSIX_CALLS]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/reference.md from the typer app.")
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/reference.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    current = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
    if args.check:
        if current != text:
            sys.stderr.write(f"{REFERENCE.relative_to(ROOT)} is out of date: run scripts/gen_reference.py\n")
            return 1
        return 0
    if current != text:
        write_atomically(REFERENCE, text)
        sys.stderr.write(f"wrote {REFERENCE.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
