"""The typer app and the one error boundary. Commands live in colabssh_cli/commands/."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from . import __version__
from .errors import INTERRUPTED, ColabsshError

app = typer.Typer(
    name="colabssh",
    help="A Google Colab runtime as a machine of your own: SSH, VS Code, Drive backups, a GPU demo.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"colabssh {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    """colabssh: paste one cell into Colab, run `colabssh connect CODE`, work over SSH."""


def print_error(exc: ColabsshError) -> None:
    """One line and a hint, as plain text (an error may quote what the runtime or ssh said)."""
    from .console import plain

    sys.stderr.write(f"colabssh: error: {plain(exc.message)}\n")
    if exc.hint:
        sys.stderr.write(f"  hint: {plain(exc.hint)}\n")


def _interrupted(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt is behind EXC (in its chain of causes and contexts)."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; every ColabsshError becomes one line plus a hint and its exit code."""
    try:
        app(args=argv, prog_name="colabssh")
    except SystemExit as exc:  # typer always ends this way (usage errors exit 2)
        if _interrupted(exc):  # typer turns Ctrl-C in a command into a silent exit 130
            sys.stderr.write("colabssh: interrupted\n")
            return INTERRUPTED
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ColabsshError as exc:
        print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("colabssh: interrupted\n")
        return INTERRUPTED
    return 0


# Importing a command module registers its command: this order is the order of `colabssh --help`.
from .commands import bootstrap, connect, forget, demo, doctor, forward, list_, status, ssh  # noqa: E402,F401,I001
from .commands import sync, restore, pull, push, try_  # noqa: E402,F401,I001
