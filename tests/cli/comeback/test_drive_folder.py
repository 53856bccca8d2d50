"""Finding Google Drive for desktop's "My Drive" per platform, and what `--drive-folder` records."""

from __future__ import annotations

from pathlib import Path

import pytest

from colabssh_cli.comeback.drive_folder import candidates, chosen, detect
from colabssh_cli.errors import ColabsshError


def made(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_macos_finds_the_cloudstorage_folder_of_the_account(tmp_path):
    home = tmp_path / "home"
    assert detect(home, "darwin") is None
    legacy = made(home / "Google Drive" / "My Drive")
    assert detect(home, "darwin") == legacy
    account = made(home / "Library" / "CloudStorage" / "GoogleDrive-me@gmail.com" / "My Drive")
    assert detect(home, "darwin") == account  # the current client's place comes first
    assert Path("/Volumes/GoogleDrive/My Drive") in candidates(home, "darwin")


def test_a_folder_that_already_holds_colabssh_wins(tmp_path):
    home = tmp_path / "home"
    made(home / "Library" / "CloudStorage" / "GoogleDrive-a@gmail.com" / "My Drive")
    other = made(home / "Library" / "CloudStorage" / "GoogleDrive-b@gmail.com" / "My Drive")
    made(other / "colabssh")
    assert detect(home, "darwin") == other


def test_windows_finds_a_drive_letter_then_the_profile_folder(tmp_path):
    home = tmp_path / "profile"
    letters = [tmp_path / "F", tmp_path / "G"]
    assert detect(home, "win32", letters) is None
    profile = made(home / "Google Drive")
    assert detect(home, "win32", letters) == profile
    letter = made(tmp_path / "G" / "My Drive")
    assert detect(home, "win32", letters) == letter
    assert candidates(home, "win32")[0] == Path("D:\\") / "My Drive"  # D: .. Z: by default


@pytest.mark.parametrize("place", ["gdrive", "google-drive", "GoogleDrive/My Drive", "Google Drive",
                                   "Insync/me@gmail.com/Google Drive"])
def test_linux_finds_the_usual_mount_points(tmp_path, place):
    home = tmp_path / "home"
    assert detect(home, "linux") is None
    made(home / place)
    assert detect(home, "linux") == home / place


def test_a_given_folder_must_exist(tmp_path):
    with pytest.raises(ColabsshError) as error:
        chosen(str(tmp_path / "nowhere"), "", tmp_path, "linux")
    assert "no such folder" in error.value.message and error.value.hint
    (tmp_path / "a-file").write_text("")
    for given, says in ((str(tmp_path / "a-file"), "is not a folder"), ("", "--drive-folder is empty"),
                        ("  ", "--drive-folder is empty")):
        with pytest.raises(ColabsshError) as error:
            chosen(given, "", tmp_path, "linux")
        assert says in error.value.message and error.value.hint


def test_a_recorded_folder_that_is_gone_is_kept_and_said(tmp_path):
    folder, notes = chosen(None, str(tmp_path / "gone"), tmp_path, "linux")
    assert folder == str(tmp_path / "gone") and "is not there now" in notes[0]


def test_auto_takes_the_detected_folder_or_says_none_was_found(tmp_path):
    home = tmp_path / "home"
    with pytest.raises(ColabsshError) as error:
        chosen("auto", "", home, "linux")
    assert "no Google Drive for desktop folder found" in error.value.message
    drive = made(home / "gdrive")
    folder, notes = chosen("auto", "", home, "linux")
    assert folder == str(drive) and "no colabssh folder under it yet" in notes[0]


def test_a_folder_with_a_code_says_so(tmp_path):
    drive = made(tmp_path / "My Drive")
    (made(drive / "colabssh" / "runtimes" / "0123456789abcdef") / "connect.code").write_text("colabssh1:x\n")
    folder, notes = chosen(str(drive), "", tmp_path, "linux")
    assert (folder, notes) == (str(drive), [f"Drive folder: {drive}; a runtime's code is there"])


def test_without_the_option_the_recorded_folder_stays_and_none_drops_it(tmp_path):
    drive = made(tmp_path / "My Drive")
    folder, notes = chosen(None, str(drive), tmp_path, "linux")
    assert folder == str(drive) and "kept from the earlier connect" in notes[0]
    assert chosen("none", str(drive), tmp_path, "linux") == ("", [])


def test_without_the_option_a_detected_folder_is_mentioned_not_used(tmp_path):
    home = tmp_path / "home"
    assert chosen(None, "", home, "linux") == ("", [])
    drive = made(home / "Google Drive")
    folder, notes = chosen(None, "", home, "linux")
    assert folder == "" and notes == [f'Google Drive for desktop found at {drive}: add --drive-folder "{drive}" '
                                      "(or auto) and a recycled runtime is found again without a new code"]
