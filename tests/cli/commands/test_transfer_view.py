"""The progress view (status lines, rsync's own lines) and the summary of sync and restore."""

from __future__ import annotations

import pytest

from colabssh_cli.commands.transfer_view import ProgressView
from colabssh_cli.errors import ColabsshError


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
    assert "VS Code server: 1 folder (.vscode-server), 1,204 files, 212.0 MiB kept on Drive (10 files (3.0 MiB) " \
           "copied now)" in lines
    assert not any("server" in line for line in summary_lines(outcome_of()))  # a sync of some paths: nothing
    dry = summary_lines(outcome_of(editors=EDITORS, dry_run=True))
    assert dry[-1] == "dry run: VS Code server: 1 folder (.vscode-server), 1,204 files, 212.0 MiB; would copy " \
                      "10 files (3.0 MiB) to Drive"
    two = {**EDITORS, "names": [".vscode-server", ".cursor-server"], "exit": None}
    assert summary_lines(outcome_of(editors=two, exit=11))[-1].startswith("editor servers: 2 folders")


def events_shown(events: list[dict], capsys, verbose: bool = False) -> list[str]:
    with ProgressView("sync", verbose) as view:  # stderr is no terminal here: status lines only
        for event in events:
            view(event)
    return capsys.readouterr().err.splitlines()


DENIED = 'rsync: [sender] send_files failed to open "/content/secret": Permission denied (13)'
TRAILER = "rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1338)"


def test_rsyncs_own_lines_show_only_with_verbose_or_when_the_run_fails(capsys):
    lines = [{"event": "message", "text": DENIED, "rsync": True},
             {"event": "message", "text": "colabssh: installing rsync on the runtime", "rsync": False}]
    assert events_shown(lines, capsys) == ["  colabssh: installing rsync on the runtime"]
    assert events_shown(lines, capsys, verbose=True) == [f"  {DENIED}", "  colabssh: installing rsync on the runtime"]
    failed = {"event": "result", "exit": 23, "messages": [DENIED, TRAILER]}
    assert events_shown([failed], capsys) == [f"  {DENIED}"]  # what "see the messages above" points at
    assert events_shown([failed], capsys, verbose=True) == []  # shown already, as they came
    for stopped in ({"exit": 20, "cancelled": True}, {"exit": 19}, {"exit": 0}):
        assert events_shown([{"event": "result", "messages": [DENIED, TRAILER], **stopped}], capsys) == []


def test_a_run_stopped_part_way_shows_no_summary_and_one_line_on_its_state(capsys):
    from colabssh_cli.commands.transfer_view import print_outcome
    from colabssh_cli.transfer.client import check

    for report in ({"exit": 20, "cancelled": True}, {"exit": 19}, {"exit": 20}):
        outcome = outcome_of(**report)
        print_outcome(outcome, as_json=False)
        assert capsys.readouterr().out == ""
        with pytest.raises(ColabsshError) as attached:
            check(outcome, attached=True)
        assert attached.value.exit_code == report["exit"]
        assert attached.value.message == ("the last sync on the runtime was interrupted: the backup on Drive is "
                                          "partial (every file in it is whole: its old version or its new one)")
        assert attached.value.hint == "run `colabssh sync` again to finish it (it copies only what is missing)"
    with pytest.raises(ColabsshError) as untouched:
        check(outcome_of(exit=20, cancelled=True, new_files=0, mode="restore"))
    assert untouched.value.message == "the restore was interrupted before it copied anything: the content root is " \
                                      "unchanged"
    print_outcome(outcome_of(exit=20, cancelled=True), as_json=True)
    assert '"cancelled": true' in capsys.readouterr().out  # a script still gets the whole document


def test_the_summary_counts_with_nouns_in_the_right_number():
    from colabssh_cli.commands.transfer_view import summary_lines

    one = summary_lines(outcome_of(files_total=1204, new_files=1, bytes_copied=2048))
    assert one[0] == "synced /content -> /d/colabssh/content: 1 file copied (1 new, 0 changed; 2.0 KiB), 1,203 " \
                     "unchanged, in 1.0 s"
    many = summary_lines(outcome_of(files_total=3000, new_files=1203, changed_files=2, deleted=1, trash="/t",
                                    kept_newer_count=1, kept_newer=["a"]))
    assert many[0].startswith("synced /content -> /d/colabssh/content: 1,205 files copied (1,203 new, 2 changed; ")
    assert "moved to the trash: 3 files (1 deleted, 2 replaced), in /t" in many
    assert "kept 1 file that is newer on the runtime (--force overwrites them): a" in many
    dry = summary_lines(outcome_of(dry_run=True, new_files=1, changed_files=0, deleted=2))
    assert dry[-1] == "dry run of sync /content -> /d/colabssh/content: 1 file to copy (1 new, 0 changed), " \
                      "2 entries to the trash; nothing was changed"


def test_a_run_that_copied_nothing_says_so_and_that_the_backup_is_up_to_date():
    from colabssh_cli.commands.transfer_view import summary_lines

    lines = summary_lines(outcome_of(files_total=1, new_files=0))
    assert lines[0] == "synced /content -> /d/colabssh/content: nothing to copy, 1 file unchanged, in 1.0 s"
    assert lines[-1] == "the backup in /d/colabssh/content is up to date" and "copied into" not in "".join(lines)
    copied = summary_lines(outcome_of(files_total=2, new_files=1))
    assert copied[-1] == "copied into /d/colabssh/content"
