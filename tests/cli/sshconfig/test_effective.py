"""effective.py: the one `ssh -G` comparison that connect and doctor share."""

from __future__ import annotations

from pathlib import Path

from colabssh_cli.sshconfig.effective import expected_options, mismatches
from colabssh_cli.sshconfig.render import HostEntry

ENTRY = HostEntry(alias="colab", hostname="X.tcp.ngrok.io", port=12345, user="root", identity_file=Path("/k/id"),
                  known_hosts=Path("/k/known_hosts"), host_key_alias="colabssh-colab", strict_host_key_checking="yes")


def shown(**changes: list[str]) -> dict[str, list[str]]:
    """What `ssh -G` prints for ENTRY as written (lists of values), with CHANGES."""
    options = {"hostname": ["x.tcp.ngrok.io"], "port": ["12345"], "user": ["root"], "hostkeyalias": ["colabssh-colab"],
               "userknownhostsfile": ["/k/known_hosts"], "stricthostkeychecking": ["true"],
               "identityfile": ["~/.ssh/id_rsa", "/k/id"], "identitiesonly": ["yes"], "checkhostip": ["no"]}
    return {**options, **changes}


def test_what_ssh_prints_for_the_written_entry_matches():
    assert mismatches(shown(), expected_options(ENTRY)) == []
    assert mismatches(shown(proxycommand=["none"], proxyjump=["none"]), expected_options(ENTRY)) == []


def test_each_override_is_named_with_both_values():
    wrong = mismatches(shown(user=["alice"], proxyjump=["jump.example"]), expected_options(ENTRY))
    assert wrong == ["user: ssh uses alice, colabssh wrote root",
                     "proxyjump: ssh uses jump.example, colabssh wrote nothing"]
    assert mismatches(shown(identityfile=["/other"]), expected_options(ENTRY)) == [
        "identityfile: ssh uses /other, colabssh wrote /k/id"]
