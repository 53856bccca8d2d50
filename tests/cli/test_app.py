"""The CLI's conventions, for every command: JSON alone on stdout with --json, NO_COLOR, --version, shell
completion, results on stdout and progress on stderr, and every error one line plus a hint (or typer's usage
error), never a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from colabssh_cli import __version__
from colabssh_cli.app import COMMANDS, main
from tests.cli.connection.test_flow_e2e import close_masters_after  # noqa: F401  (fixture)

COLABSSH = str(Path(sys.executable).with_name("colabssh"))
ERROR = re.compile(r"colabssh: error: [^\n]+\n(  hint: [^\n]+\n)*")
USAGE = re.compile(r"Usage: colabssh [^\n]*\nTry 'colabssh [^\n]*-h' for help\.\n.*Error.*", re.DOTALL)
_SGR = re.compile(r"\x1b\[([0-9;]*)m")

# At least one bad invocation of every command (test_every_command_has_bad_invocations keeps it so), run with
# an empty HOME: no key, no session.
BAD_INVOCATIONS: dict[str, list[list[str]]] = {
    "": [["bogus"], ["--bogus"]],
    "bootstrap": [["--tunnel", "bogus"], ["--public-key", "/nonexistent.pub"], ["--sync-every", "-1"]],
    "connect": [["garbage"], [], ["colabssh1:AAAA"], ["--editor", "vim", "x"], ["--host", "x.tcp.ngrok.io"],
                ["--port", "99999", "--host", "h", "--password"], ["--bogus"], ["colabssh1:AAAA", "extra"],
                ["colabssh", "connect"], ["'colabssh connect garbage'"]],
    "forget": [["nope"], ["bad!alias"], []],
    "demo": [[], ["--name", "x!y"], ["--gpu", "--name", "nope"]],
    "doctor": [["--bogus"], ["extra"]],
    "forward": [["abc"], ["70000"], ["6006"], ["6006:0"], []],
    "list": [["--bogus"]],
    "status": [["nope"], ["bad alias"]],
    "ssh": [["nope"], ["nope", "--", "true"]],
    "sync": [[], ["--attach", "--delete"], ["--every", "-1"], ["--name", "nope"]],
    "restore": [[], ["--from", "x", "--name", "nope"]],
    "pull": [[], ["x"]],
    "push": [[], ["/nonexistent"]],
    "try": [["--bogus"], ["extra"]],
}


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed command, a real process (HOME is the test's temp folder)."""
    return subprocess.run([COLABSSH, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def assert_one_error(code: int, err: str, what: object) -> None:
    assert code != 0, what
    assert "Traceback" not in err, (what, err)
    if ERROR.fullmatch(err):
        return
    assert USAGE.fullmatch(err) and code == 2, (what, err)


def colours(text: str) -> list[str]:
    """The colour codes among the SGR escape sequences (bold or dim are not colours)."""
    found = []
    for params in _SGR.findall(text):
        for param in params.split(";"):
            if param and (30 <= int(param) <= 38 or 40 <= int(param) <= 48 or 90 <= int(param) <= 107):
                found.append(param)
    return found


def test_every_command_has_bad_invocations():
    import typer

    from colabssh_cli.app import app

    root = typer.main.get_command(app)
    commands = set(root.list_commands(root.make_context("colabssh", [], resilient_parsing=True)))
    assert commands == set(BAD_INVOCATIONS) - {""}


@pytest.mark.parametrize(("command", "args"), [(c, a) for c, runs in BAD_INVOCATIONS.items() for a in runs],
                         ids=lambda value: " ".join(value) if isinstance(value, list) else value)
def test_a_bad_invocation_is_one_error_line_and_a_hint(command, args, capsys):
    argv = [command, *args] if command else args
    code = main(argv)
    out, err = capsys.readouterr()
    assert_one_error(code, err, argv)
    assert out == "", argv  # nothing half-done was reported as a result


def test_the_installed_command_reports_errors_the_same_way():
    for argv in (["connect", "garbage"], ["forward", "abc"], ["status", "--bogus"], ["sync"]):
        done = run(*argv)
        assert_one_error(done.returncode, done.stderr, argv)
        assert done.stdout == ""


def test_a_damaged_session_list_is_one_error_for_every_command_that_reads_it(isolated_home, capsys):
    sessions = isolated_home / ".ssh" / "colabssh" / "sessions.json"
    sessions.parent.mkdir(parents=True)
    sessions.write_text("{not json")
    for argv in (["list"], ["status"], ["sync"], ["demo"], ["forward", "6006"], ["ssh"], ["pull", "x"]):
        code = main(argv)
        err = capsys.readouterr().err
        assert_one_error(code, err, argv)
        assert "is damaged" in err


TYPE_LABEL = re.compile(r"<(str|bool|int|integer|float|path|text|choice|int range|float range|uuid|filename)>",
                        re.IGNORECASE)


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_no_type_labels(command, monkeypatch, capsys):
    """Every command's -h: a word for what a value is (ALIAS, HOST, PATH...), nothing beside a flag, and never
    typer's type labels (<str>, <bool>, ...)."""
    monkeypatch.setenv("COLUMNS", "200")
    assert main([command, "-h"] if command else ["-h"]) == 0
    out = capsys.readouterr().out
    assert "Usage: colabssh" in out and "--help" in out
    assert TYPE_LABEL.search(out) is None, out
    assert re.search(r"\[x ?[<>]=?", out) is None, out  # click's "[x>=0]": ranges are said in words
    for line in out.splitlines():
        flag = re.search(r"│ (--json|--dry-run|--no-open|--password|--version)\b\s+(\S+)", line)
        assert flag is None or not flag.group(2).isupper(), line  # no value word beside a flag


def test_help_names_each_value_by_what_it_is(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    expected = {"connect": ["[CODE]", "--name", "-n", "ALIAS", "--editor", "EDITOR"],
                "sync": ["--every", "SECONDS [at least 0]", "--bwlimit", "RATE [at least 0]"],
                "status": ["[ALIAS]", "--every", "SECONDS"],
                "bootstrap": ["--out", "PATH", "--sync-every", "SECONDS"], "forget": ["ALIAS"]}
    for command, words in expected.items():
        assert main([command, "-h"]) == 0
        out = capsys.readouterr().out
        assert all(word in out for word in words), (command, out)


def test_connect_help_puts_the_colab_ssh_options_in_a_panel_of_their_own(monkeypatch, capsys):
    from colabssh_cli.commands.connect import COLAB_SSH_PANEL

    monkeypatch.setenv("COLUMNS", "200")
    assert main(["connect", "-h"]) == 0
    out = capsys.readouterr().out
    assert "older colab-ssh package" in COLAB_SSH_PANEL
    panels = re.findall(r"╭─ (.+?) ─+╮\n(.*?)╰─+╯", out, re.DOTALL)
    options = {title: re.findall(r"│ (--[a-z-]+)", body) for title, body in panels}
    colab_ssh = ["--host", "--port", "--cloudflared-host", "--password", "--user"]
    assert options[COLAB_SSH_PANEL] == colab_ssh, out
    assert not set(colab_ssh) & set(options["Options"]) and "--name" in options["Options"]


def test_version():
    done = run("--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"colabssh {__version__}\n", "")


def test_shell_completion_is_typers_and_completes_commands_and_options():
    # typer detects the user's shell from the process tree; its own test switch makes it take the name given
    shown = run("--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert shown.returncode == 0 and "_COLABSSH_COMPLETE=complete_bash" in shown.stdout, shown.stderr
    done = run(env={"_COLABSSH_COMPLETE": "complete_bash", "COMP_WORDS": "colabssh fo", "COMP_CWORD": "1"})
    assert done.returncode == 0 and done.stdout.split() == ["forget", "forward"]
    done = run(env={"_COLABSSH_COMPLETE": "complete_bash", "COMP_WORDS": "colabssh doctor --j", "COMP_CWORD": "2"})
    assert done.stdout.split() == ["--json"]


def test_no_color_is_honoured(isolated_home):
    forced = {"FORCE_COLOR": "1", "COLUMNS": "100", "TERM": "xterm-256color"}
    coloured = run("doctor", env={**forced, "NO_COLOR": ""})
    assert colours(coloured.stdout), "FORCE_COLOR alone should colour the table (else this test proves nothing)"
    plain = run("doctor", env={**forced, "NO_COLOR": "1"})
    assert plain.returncode == coloured.returncode == 0
    assert colours(plain.stdout) == [] and "ssh client" in plain.stdout
    usage = run("list", "--bogus", env={**forced, "NO_COLOR": "1"})
    assert colours(usage.stderr) == [] and "No such option" in usage.stderr


def test_results_on_stdout_progress_on_stderr(runtime, tmp_path):
    cell = run("bootstrap", "--tunnel", "local")
    assert cell.returncode == 0 and cell.stderr == "" and "colab_bootstrap" in cell.stdout
    out = tmp_path / "cell.py"
    written = run("bootstrap", "--tunnel", "local", "--out", str(out))
    assert written.stdout == "" and "wrote the cell" in written.stderr and out.read_text() == cell.stdout
    connected = run("connect", runtime.code, "--no-open")
    assert connected.returncode == 0, connected.stderr
    assert "checking the login" in connected.stderr and "checking the login" not in connected.stdout
    assert "colab: root@" in connected.stdout and "works (checked with OpenSSH)" in connected.stdout
    (runtime.content / "notes.txt").write_text("backed up\n")
    synced = run("sync")
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.startswith("synced ") and "syncing " in synced.stderr and "syncing " not in synced.stdout


@pytest.mark.slow  # runs every command against a runtime
def test_json_is_all_there_is_on_stdout(runtime):
    assert run("connect", runtime.code, "--no-open").returncode == 0
    (runtime.content / "data.csv").write_text("a,b\n1,2\n")
    documents = {}
    for argv in (["list", "--json"], ["status", "--json"], ["sync", "--json"], ["demo", "--json"],
                 ["doctor", "--json"]):
        done = run(*argv)
        assert done.returncode == 0, (argv, done.stderr)
        documents[argv[0]] = json.loads(done.stdout)  # the whole of stdout is one JSON document
    assert documents["list"][0]["alias"] == "colab"
    assert documents["status"]["reachable"] is True
    assert documents["sync"]["exit"] == 0 and documents["sync"]["new_files"] >= 1
    assert all(check["status"] in ("passed", "skipped") for check in documents["demo"]["checks"])
    assert documents["doctor"]["ok"] is True


def test_json_of_a_failure_is_still_json_and_the_error_goes_to_stderr(connected):
    connected.runtime.stop()
    from colabssh_cli.remote.runner import close_shared_connection

    close_shared_connection(connected.paths, "colab")
    for argv, key in ((["status", "--json"], "reachable"), (["doctor", "--json"], "ok")):
        done = run(*argv)
        assert done.returncode != 0
        assert json.loads(done.stdout)[key] is False
        progress = "doctor: ssh colab true ...\n"  # doctor's one progress line comes first
        assert_one_error(done.returncode, done.stderr.removeprefix(progress), argv)


def test_ctrl_c_in_a_command_says_so_and_exits_130(isolated_home, monkeypatch, capsys):
    """typer turns a KeyboardInterrupt inside a command into a silent exit 130: the boundary says what happened."""
    from colabssh_cli import session as sessions
    from colabssh_cli.app import main

    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sessions, "load_sessions", interrupted)
    assert main(["list"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "colabssh: interrupted"


def test_ctrl_c_while_the_cli_still_imports_is_one_line_not_a_traceback(monkeypatch, capsys):
    """The console script's entry (colabssh_cli.entry) imports the CLI itself, so a Ctrl-C that lands during the
    imports (the first ~0.1 s) is answered like any other."""
    import importlib.abc
    import sys

    from colabssh_cli import entry

    class Interrupting(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "colabssh_cli.app":
                raise KeyboardInterrupt
            return None

    monkeypatch.delitem(sys.modules, "colabssh_cli.app")
    monkeypatch.setattr(sys, "meta_path", [Interrupting(), *sys.meta_path])
    assert entry.main() == 130
    assert capsys.readouterr().err == "colabssh: interrupted\n"


@pytest.mark.parametrize("argv", [["connect", "KEY"], ["connect", "--no-open", "KEY"], ["KEY"]])
def test_a_pasted_private_key_is_refused_and_never_printed(argv, isolated_home, capsys):
    """typer would take the key block for an option and quote it whole in its usage error."""
    key = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMw\n"
           "-----END OPENSSH PRIVATE KEY-----\n")
    assert main([key if word == "KEY" else word for word in argv]) == 2
    out, err = capsys.readouterr()
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ" not in out + err
    assert err.startswith("colabssh: error: that looks like a private key; never share it")
    assert not (isolated_home / ".ssh").exists()
