"""Each command's import budget: which of colabssh's modules and which other packages a command loads, run as a
user runs it (a fresh interpreter, one stored session whose runtime does not answer, so every command goes as far
as its first ssh call). A command that starts loading more than its budget fails here; the budget is what keeps
`colabssh list` near bare typer's start (benchmarks/bench_startup.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from colabssh_cli.paths import Paths
from colabssh_cli.session import Session, Transport, save_sessions

SCRIPT = """
import contextlib, io, json, sys
from colabssh_cli.app import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = main({argv!r})
print(json.dumps({{"code": code, "modules": sorted(sys.modules), "err": err.getvalue()}}))
"""

# What every command may load besides the standard library: typer (with its own click) and what it needs.
BASE_PACKAGES = {"typer", "shellingham", "annotated_doc", "_distutils_hack"}
NEVER = {"pydantic", "pydantic_core", "paramiko", "cryptography", "invoke", "nacl", "bcrypt", "pyngrok", "torch",
         "click", "yaml"}

CORE = {"colabssh_cli", "colabssh_cli.app", "colabssh_cli.errors", "colabssh_cli.commands"}
SESSIONS = {"colabssh_cli.paths", "colabssh_cli.session", "colabssh_cli.console", "colabssh_cli.sshconfig",
            "colabssh_cli.sshconfig.files", "colab_bootstrap", "colab_bootstrap.files"}
REMOTE = {"colabssh_cli.remote", "colabssh_cli.remote.runner", "colabssh_cli.remote.process",
          "colabssh_cli.remote.advice", "colabssh_cli.remote.colab_log",
          "colabssh_cli.comeback", "colabssh_cli.comeback.notes",  # ssh failed (exit 255): what the relay said
          "colabssh_cli.sshconfig.render"}  # the connection-sharing folder, made again when it is gone
SHIPPING = {"colabssh_cli.remote.shipping", "colab_bootstrap.ship", "colab_bootstrap.pack", "colab_bootstrap.errors"}
TRANSFER = {"colabssh_cli.commands.transfer_view", "colabssh_cli.transfer", "colabssh_cli.transfer.client",
            "colab_bootstrap.sync", "colab_bootstrap.sync.protocol", "colab_bootstrap.units"}
DEMO = {"colabssh_cli.demo_client", "colab_bootstrap.demo", "colab_bootstrap.demo.autograd",
        "colab_bootstrap.demo.checks", "colab_bootstrap.demo.matmul", "colab_bootstrap.demo.peaks",
        "colab_bootstrap.demo.run", "colab_bootstrap.demo.tensors", "colab_bootstrap.demo.throughput",
        "colab_bootstrap.demo.training"}
STATUS = {"colabssh_cli.commands.status", "colabssh_cli.runtime_status", "colabssh_cli.commands.status_view",
          "colab_bootstrap.units"}
SSHCONFIG = {f"colabssh_cli.sshconfig.{name}" for name in ("apply", "lock", "plan", "render", "text", "transaction")}

# command line -> (colabssh's modules it may load, other packages it may load)
BUDGETS: dict[tuple[str, ...], tuple[set[str], set[str]]] = {
    ("--version",): (CORE, set()),
    ("list", "--json"): (CORE | SESSIONS | {"colabssh_cli.commands.list_"}, set()),
    ("list",): (CORE | SESSIONS | {"colabssh_cli.commands.list_"}, {"rich"}),
    ("status", "--json"): (CORE | SESSIONS | REMOTE | STATUS, set()),
    ("status",): (CORE | SESSIONS | REMOTE | STATUS, set()),
    ("status", "--watch"): (CORE | SESSIONS | REMOTE | STATUS, set()),  # rich.live only on a terminal
    ("ssh", "--", "true"): (CORE | SESSIONS | REMOTE | {"colabssh_cli.commands.ssh"}, set()),
    ("sync",): (CORE | SESSIONS | REMOTE | SHIPPING | TRANSFER | {"colabssh_cli.commands.sync"}, set()),
    ("restore",): (CORE | SESSIONS | REMOTE | SHIPPING | TRANSFER | {"colabssh_cli.commands.restore"}, set()),
    ("pull", "work"): (CORE | SESSIONS | REMOTE | SHIPPING | TRANSFER
                       | {"colabssh_cli.commands.pull", "colabssh_cli.transfer.copy"}, set()),
    ("demo",): (CORE | SESSIONS | REMOTE | SHIPPING | DEMO | {"colabssh_cli.commands.demo"}, {"rich"}),
    ("forward", "8080", "--name", "colab"): (CORE | SESSIONS | REMOTE | {"colabssh_cli.commands.forward",
                                                                         "colabssh_cli.remote.forwarding"}, set()),
    ("bootstrap", "--tunnel", "local"): (CORE | SESSIONS | SHIPPING | SSHCONFIG
                                         | {"colabssh_cli.commands.bootstrap", "colabssh_cli.cell",
                                            "colabssh_cli.remote", "colabssh_cli.remote.keys",
                                            "colabssh_cli.remote.process", "colab_bootstrap.pubkey"}, set()),
    # A working connect loads no paramiko either (tests/cli/connection/test_connect_one_login.py): it explains
    # a failed login only.
    ("connect", "colabssh1:bad"): (CORE | SESSIONS | REMOTE | SHIPPING | SSHCONFIG
                                   | {"colabssh_cli.commands.connect", "colabssh_cli.connection",
                                      *(f"colabssh_cli.connection.{name}" for name in (
                                          "colab_bridge", "colab_cli", "colab_cli_input", "commit", "flow",
                                          "tunnel", "tunnel_input")),
                                      "colabssh_cli.editor", "colabssh_cli.remote.keys",
                                      "colabssh_cli.remote.preflight", "colabssh_cli.sshconfig.effective",
                                      "colab_bootstrap.conncode", "colabssh_cli.comeback",
                                      "colabssh_cli.comeback.drive_folder", "colab_bootstrap.drive_layout",
                                      "colab_bootstrap.pubkey", "colab_bootstrap.settings"}, set()),
    ("forget", "colab"): (CORE | SESSIONS | REMOTE | SSHCONFIG
                          | {"colabssh_cli.commands.forget", "colabssh_cli.connection",
                             "colabssh_cli.connection.commit", "colabssh_cli.sshconfig.effective",
                             "colabssh_cli.sshconfig.repair"}, {"rich"}),
    ("doctor",): (CORE | SESSIONS | REMOTE | SHIPPING | SSHCONFIG
                  | {"colabssh_cli.commands.doctor", "colabssh_cli.diagnosis", "colabssh_cli.diagnosis.editor",
                     "colabssh_cli.diagnosis.local", "colabssh_cli.diagnosis.report", "colabssh_cli.diagnosis.sessions",
                     "colabssh_cli.editor", "colabssh_cli.sshconfig.effective", "colabssh_cli.sshconfig.repair",
                     "colab_bootstrap.conncode", "colab_bootstrap.pubkey", "colab_bootstrap.settings",
                     "colab_bootstrap.units"}, {"rich"}),
}


@pytest.fixture
def one_session(isolated_home: Path, tmp_path: Path) -> dict[str, str]:
    """A stored session 'colab' and an ssh on PATH that fails as ssh does when nothing answers (exit 255)."""
    save_sessions(Paths.from_env(), {"colab": Session(alias="colab", host="127.0.0.1", port=1, user="root",
                                                      tunnel=Transport.LOCAL)})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ssh = bin_dir / "ssh"
    ssh.write_text('#!/bin/sh\necho "ssh: connect to host 127.0.0.1 port 1: Connection refused" >&2\nexit 255\n')
    ssh.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def loaded_by(argv: tuple[str, ...], env: dict[str, str]) -> dict:
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(argv=list(argv))], capture_output=True, text=True,
                            env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def ours(modules: list[str]) -> set[str]:
    return {name for name in modules if name.split(".")[0] in ("colabssh_cli", "colab_bootstrap")}


def packages(modules: list[str]) -> set[str]:
    tops = {name.split(".")[0] for name in modules}
    return {name for name in tops - set(sys.stdlib_module_names) - {"colabssh_cli", "colab_bootstrap", "__main__"}
            if not name.startswith("__editable__")}


@pytest.mark.parametrize("argv", list(BUDGETS), ids=" ".join)
def test_each_command_loads_only_its_budget(argv, one_session):
    allowed_ours, allowed_packages = BUDGETS[argv]
    seen = loaded_by(argv, one_session)
    command = argv[0].lstrip("-")
    if command != "version":  # the probe reached the command itself, not a usage error
        assert f"colabssh_cli.commands.{'list_' if command == 'list' else command}" in seen["modules"], seen["err"]
    assert ours(seen["modules"]) - allowed_ours == set(), f"`colabssh {' '.join(argv)}` loads more than its budget"
    extra = packages(seen["modules"]) - BASE_PACKAGES - allowed_packages
    assert extra == set(), f"`colabssh {' '.join(argv)}` loads {sorted(extra)}"
    assert not packages(seen["modules"]) & NEVER


def test_the_version_loads_no_command_at_all(one_session):
    seen = loaded_by(("--version",), one_session)
    assert seen["code"] == 0
    assert not [name for name in seen["modules"] if name.startswith("colabssh_cli.commands.")]


def test_the_probe_sees_what_a_command_loads(one_session):
    """The budget check would catch a command that loads something new: `status` reaches its ssh call (exit 3,
    unreachable) and has loaded the runner; `list` has not."""
    status = loaded_by(("status", "--json"), one_session)
    assert status["code"] == 3 and "Connection refused" in status["err"]
    assert "colabssh_cli.remote.runner" in status["modules"]
    listed = loaded_by(("list", "--json"), one_session)
    assert listed["code"] == 0 and "colabssh_cli.remote.runner" not in listed["modules"]
    assert ours(status["modules"]) - BUDGETS[("list", "--json")][0]
