"""colab_bootstrap/files.py: the runtime side's one atomic writer (the cell's files, cloudflared's download)."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from colab_bootstrap.files import copy_atomically, write_atomically


class _BrokenDownload(io.RawIOBase):
    """A stream that gives some bytes, then fails as a dropped connection does."""

    def __init__(self) -> None:
        self.given = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer
        if self.given:
            raise ConnectionResetError("the download broke off")
        self.given = True
        buffer[:4] = b"ELF!"
        return 4


def test_a_download_lands_whole_with_its_mode(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    target = tmp_path / "state" / "cloudflared"
    copy_atomically(target, io.BytesIO(b"\x7fELF" + b"x" * 100_000), 0o700)
    assert target.read_bytes() == b"\x7fELF" + b"x" * 100_000
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert sorted(p.name for p in target.parent.iterdir()) == ["cloudflared"]


def test_a_broken_download_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    target = tmp_path / "state" / "cloudflared"
    target.write_bytes(b"the old build")
    with pytest.raises(ConnectionResetError):
        copy_atomically(target, _BrokenDownload(), 0o700)
    assert target.read_bytes() == b"the old build"
    assert sorted(p.name for p in target.parent.iterdir()) == ["cloudflared"]


def test_text_is_written_at_the_mode_asked_whatever_the_umask_or_a_leftover_says(tmp_path: Path) -> None:
    target = tmp_path / "ngrok.yml"
    (tmp_path / ".ngrok.yml.leftover.tmp").write_text("an earlier run's temp")
    write_atomically(target, "authtoken: x\n", 0o600)
    assert target.read_text() == "authtoken: x\n" and stat.S_IMODE(target.stat().st_mode) == 0o600
