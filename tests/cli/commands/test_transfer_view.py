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


def outcome_of(**report):
    from colabssh_cli.transfer.client import SyncOutcome

    base = {"event": "result", "exit": 0, "mode": "backup", "source": "/content", "dest": "/d/colabssh/content",
            "files_total": 3, "new_files": 1, "seconds": 1.0}
    return SyncOutcome({**base, **report}, [], [])


EDITORS = {"names": [".vscode-server"], "exit": 0, "files": 1204, "bytes": 212 << 20, "files_copied": 10,
           "bytes_copied": 3 << 20, "deleted": 0, "messages": []}


def test_a_full_sync_says_one_line_about_the_editor_folders():
    from colabssh_cli.commands.transfer_view import summary_lines

    lines = summary_lines(outcome_of(editors=EDITORS))
    assert "VS Code server: 1 folder (.vscode-server), 1,204 files, 212.0 MiB kept on Drive (10 file(s) (3.0 MiB) " \
           "copied now)" in lines
    assert not any("server" in line for line in summary_lines(outcome_of()))  # a sync of some paths: nothing
    dry = summary_lines(outcome_of(editors=EDITORS, dry_run=True))
    assert dry[-1] == "dry run: VS Code server: 1 folder (.vscode-server), 1,204 files, 212.0 MiB; would copy " \
                      "10 file(s) (3.0 MiB) to Drive"
    two = {**EDITORS, "names": [".vscode-server", ".cursor-server"], "exit": None}
    assert summary_lines(outcome_of(editors=two, exit=11))[-1].startswith("editor servers: 2 folders")
