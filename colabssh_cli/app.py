"""The typer app and the one error boundary. Commands live in colabssh_cli/commands/."""

from __future__ import annotations

import copy
import importlib
import re
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any, Optional

import typer
from typer.core import TyperGroup

from . import __version__
from .errors import BAD_INPUT, INTERRUPTED, ColabsshError

# Each command and the module under colabssh_cli/commands/ that defines it, in the order of `colabssh --help`.
COMMANDS = {"bootstrap": "bootstrap", "connect": "connect", "forget": "forget", "demo": "demo", "doctor": "doctor",
            "forward": "forward", "list": "list_", "status": "status", "ssh": "ssh", "sync": "sync",
            "restore": "restore", "pull": "pull", "push": "push", "try": "try_"}


class _CommandsOnDemand(MutableMapping[str, Any]):
    """The group's commands, each imported and built the first time it is looked up: `colabssh list` loads the
    list command's module only, `--version` none (--help and completion look them all up)."""

    def __init__(self, built: dict[str, Any]) -> None:
        # typer hands over the commands whose modules were imported before (in one process that runs main
        # twice, as the tests do): they are built again here, the same way as the rest (label_for_help)
        self.built = {name: command for name, command in built.items() if name not in COMMANDS}

    def __getitem__(self, name: str) -> Any:
        if name not in self.built:
            if name not in COMMANDS:
                raise KeyError(name)
            importlib.import_module(f"{__package__}.commands.{COMMANDS[name]}")  # registers it on `app`
            info = next(info for info in app.registered_commands if _name_of(info) == name)
            command = typer.main.get_command_from_info(
                info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=app.rich_markup_mode)
            for param in command.params:
                label_for_help(param)
            command.help = flowing_help(command.help)
            self.built[name] = command
        return self.built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self.built[name] = command

    def __delitem__(self, name: str) -> None:
        del self.built[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self.built if name not in COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS) + sum(name not in COMMANDS for name in self.built)


def flowing_help(text: Optional[str]) -> Optional[str]:
    """A command's docstring as `-h` shows it: each paragraph one flowing text (typer keeps the docstring's own
    line breaks, which then break a terminal's lines in odd places); paragraphs stay apart."""
    if not text:
        return text
    import inspect

    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(paragraph if paragraph.startswith("\b") else " ".join(paragraph.split())
                        for paragraph in paragraphs)


def _name_of(info: Any) -> str:
    return info.name or typer.main.get_command_name(info.callback.__name__)


# The word shown for a value where the parameter's own name would not say it (keyed by the parameter's name); any
# other value option or argument without a metavar shows PATH for a path, else its name in capitals.
METAVARS = {"name": "ALIAS", "cloudflared_host": "HOST", "sync_every": "SECONDS", "every": "SECONDS"}


def label_for_help(param: Any) -> Any:
    """PARAM as `-h` and docs/reference.md show it: a word for what a value is (ALIAS, HOST, PATH...) rather than
    typer's type label (`<str>`, `<bool>`, `<path>`), and nothing beside a flag.

    Done here, for every command at once, so that a command declares a metavar only where the derived word would
    be wrong. An argument's type gets a copy whose label is empty: the rich help shows an argument's type label
    beside its metavar, whatever the metavar is."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        param.metavar = ""
        return param
    if param.metavar is None and not hasattr(param.type, "choices"):  # a choice's [a|b] says more than a name
        word = METAVARS.get(param.name or "") or ("PATH" if param.type.name == "path" else (param.name or "").upper())
        param.metavar = word + ("..." if param.nargs != 1 else "")
    if hasattr(param.type, "_describe_range") and not getattr(param.type, "colabssh_worded", False):
        shown_range = copy.copy(param.type)  # "[at least 0]" rather than click's "[x>=0]"
        shown_range._describe_range = lambda kind=param.type: range_words(kind)
        shown_range.colabssh_worded = True
        param.type = shown_range
    if param.param_type_name == "argument" and not getattr(param.type, "colabssh_unlabelled", False):
        type_label = param.type.get_metavar
        shown = copy.copy(param.type)
        shown.get_metavar = lambda param, ctx: type_label(param=param, ctx=ctx) or ""
        shown.colabssh_unlabelled = True
        param.type = shown
    return param


def range_words(kind: Any) -> str:
    """A number range as -h says it: "at least 0", "at most 10", "0.5 to 3600" (click writes "x>=0")."""
    low, high = getattr(kind, "min", None), getattr(kind, "max", None)
    if low is not None and high is not None:
        return f"{low:g} to {high:g}"
    if low is not None:
        return f"{'more than' if getattr(kind, 'min_open', False) else 'at least'} {low:g}"
    if high is not None:
        return f"{'less than' if getattr(kind, 'max_open', False) else 'at most'} {high:g}"
    return ""


class _Group(TyperGroup):
    def __init__(self, *args: Any, commands: Optional[dict[str, Any]] = None, **kwargs: Any) -> None:
        super().__init__(*args, commands=_CommandsOnDemand(commands or {}), **kwargs)  # type: ignore[arg-type]

    def get_params(self, ctx: Any) -> list[Any]:  # typer adds the completion options after __init__
        return [label_for_help(param) for param in super().get_params(ctx)]


app = typer.Typer(
    cls=_Group,
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


_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")  # a pasted key block, whatever its kind


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; every ColabsshError becomes one line plus a hint and its exit code."""
    words = sys.argv[1:] if argv is None else argv
    if any(_PRIVATE_KEY.search(word) for word in words):  # before typer, whose usage errors quote the word whole
        print_error(ColabsshError("that looks like a private key; never share it (and it is not a connection code)",
                                  "give `colabssh connect` the code the cell printed: colabssh1:...", BAD_INPUT))
        return BAD_INPUT
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

