"""Sessions whose runtime colab-ssh started: `connect --host/--port --password`, `--cloudflared-host --password`.

No key is pinned from a code: the block says StrictHostKeyChecking ask, so ssh (or VS Code) shows the
fingerprint at the first login and pins it then in colabssh's known_hosts, never silently.

What is tested for real: the written block through `ssh -G`; the first contact through OpenSSH's own
confirmation prompt (answered by an SSH_ASKPASS program, as a person would answer it), with a key login
to the cell's sshd (which accepts keys only). A password login itself is not exercised: the cell's sshd
is key-only by design, and a password-accepting sshd would need a system user with a password.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from colabssh_cli.app import main
from colabssh_cli.errors import UNREACHABLE
from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import close_shared_connection
from colabssh_cli.sshconfig.effective import effective_options
from tests.cli.connection.test_flow import tree
from tests.cli.connection.test_flow_e2e import close_masters_after, cloudflared_env, stats  # noqa: F401  (fixtures)


def first_login(home: Path, tmp: Path, answer: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """`ssh colab` with no terminal: OpenSSH asks its host-key question through SSH_ASKPASS."""
    prompts = tmp / "prompts.txt"
    askpass = tmp / "askpass"
    askpass.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{prompts}'\necho '{answer}'\n")
    askpass.chmod(0o700)
    env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    result = subprocess.run(["ssh", "-F", str(home / ".ssh" / "config"), "colab", "echo first-contact"],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env, timeout=30,
                            start_new_session=True)
    return result, prompts.read_text() if prompts.exists() else ""


def test_a_colab_ssh_session_pins_the_key_at_first_contact(runtime, isolated_home, tmp_path, capsys):
    info = runtime.info
    argv = ["connect", "--host", info.host, "--port", str(info.port), "--password", "--no-open"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"host key {info.fingerprint} (shown by the runtime now; not pinned" in out
    paths = Paths.from_env()
    assert not paths.known_hosts.exists()  # nothing pinned yet
    options = effective_options(paths, "colab")
    assert options["stricthostkeychecking"] == ["ask"]
    assert options["passwordauthentication"] == ["yes"]
    assert options["hostkeyalias"] == ["colabssh-colab"]
    assert options["userknownhostsfile"] == [str(paths.known_hosts)]
    # no silent trust: a batch login refuses the unknown key
    batch = subprocess.run(["ssh", "-F", str(paths.user_config), "-o", "BatchMode=yes", "colab", "true"],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
    assert batch.returncode == 255 and "Host key verification failed" in batch.stderr
    # a "no" keeps it that way
    refused, prompt = first_login(isolated_home, tmp_path, "no")
    assert refused.returncode == 255 and not paths.known_hosts.exists()
    # the person compares the fingerprint colabssh printed with the one ssh shows, and says yes
    accepted, prompt = first_login(isolated_home, tmp_path, "yes")
    assert info.fingerprint in prompt
    assert accepted.returncode == 0 and accepted.stdout.strip() == "first-contact", accepted.stderr
    assert paths.known_hosts.read_text() == f"colabssh-colab {info.hostkey}\n"
    # connecting again to the same address keeps that pin: no file changes
    before = stats(isolated_home)
    assert main(argv) == 0
    assert stats(isolated_home) == before
    # and a new address (another runtime) drops it, so ssh asks again
    close_shared_connection(paths, "colab")
    assert main(["connect", "--host", "localhost", "--port", str(info.port), "--password", "--no-open"]) == 0
    assert not paths.known_hosts.exists()


def test_a_colab_ssh_cloudflared_session_uses_the_local_cloudflared(start_runtime, isolated_home, tmp_path,
                                                                   cloudflared_env):  # noqa: F811
    running = start_runtime("cloudflared", extra_env=cloudflared_env)
    assert main(["connect", "--cloudflared-host", running.info.host, "--password", "--no-open"]) == 0
    paths = Paths.from_env()
    options = effective_options(paths, "colab")
    exe = str(tmp_path / "cloudflared-bin" / "cloudflared")
    assert options["proxycommand"] == [f'"{exe}" access ssh --hostname %h']
    assert options["hostname"] == [running.info.host] and options["port"] == ["22"]
    accepted, prompt = first_login(isolated_home, tmp_path, "yes")
    assert running.info.fingerprint in prompt
    assert accepted.stdout.strip() == "first-contact", accepted.stderr
    close_shared_connection(paths, "colab")


def test_a_colab_ssh_session_that_does_not_answer_writes_nothing(client_key, isolated_home, capsys):
    import socket

    with socket.socket() as holder:  # a port that is surely closed: bound, never listening
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        before = tree(isolated_home)
        assert main(["connect", "--host", "127.0.0.1", "--port", str(port), "--password", "--no-open"]) == UNREACHABLE
    assert "did not answer" in capsys.readouterr().err
    assert tree(isolated_home) == before
