"""The progress view's status lines for the runner's start event."""

from __future__ import annotations

from colabssh_cli.commands.transfer_view import ProgressView


def start_line(event: dict, capsys) -> str:
    with ProgressView("sync") as view:
        view({"event": "start", "source": "/content", "dest": "/drive/colabssh/content", **event})
    return capsys.readouterr().err.strip()


def test_a_backup_start_names_no_counts_it_no_longer_makes(capsys):
    """A backup's runner lets rsync walk the tree: its start event carries no counts, and none are made up."""
    assert start_line({"mode": "backup"}, capsys) == "syncing /content -> /drive/colabssh/content"
    assert "0 files" not in start_line({"mode": "backup", "dry_run": True}, capsys)


def test_a_restore_start_still_counts(capsys):
    line = start_line({"mode": "restore", "files": 1204, "bytes": 3 * 1024 ** 3}, capsys)
    assert line == "restoring /content -> /drive/colabssh/content: 1,204 files, 3.0 GiB"
