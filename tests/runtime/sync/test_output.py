"""The runner's fast reader of rsync's output (colab_bootstrap/sync/output.py), on real rsync output: the same
totals and events as the laptop's line parser, item sizes for the many-small-files warning, bounded memory."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from colab_bootstrap.sync import output as sync_output
from colab_bootstrap.sync.output import OUT_FORMAT, OutputReader
from colab_bootstrap.sync.protocol import LINE_MAX, LogParser

RSYNC = ["rsync", "-rt", "--relative", "--itemize-changes", "--8-bit-output", "--info=progress2,stats2"]


def rsync_output(argv: list[str]) -> bytes:
    done = subprocess.run(argv, capture_output=True, env={**os.environ, "LC_ALL": "C"})
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, bytes]:
    """rsync's output for a first copy (folders, a link, a FIFO, a big file) and a second one (a change, a deletion
    kept in a backup folder), with colabssh's OUT_FORMAT (sized), and the same with the sizes taken out (plain:
    rsync's own format, as a job started by an older runner logged it)."""
    source, dest = tmp_path / "src", tmp_path / "dst"
    (source / "d" / "e").mkdir(parents=True)
    (source / "d" / "f").write_bytes(b"x" * 1000)
    (source / "d" / "e" / "g h.txt").write_bytes(b"y" * 10)
    (source / "big.bin").write_bytes(b"z" * (1 << 20))
    (source / "link").symlink_to("/etc/hostname")
    os.mkfifo(source / "fifo")
    found = {"first-sized": rsync_output([*RSYNC, f"--out-format={OUT_FORMAT}", f"{source}/./", f"{dest}/"])}
    (source / "d" / "f").write_bytes(b"x" * 1001)
    (source / "d" / "e" / "g h.txt").unlink()
    found["second-sized"] = rsync_output([*RSYNC, f"--out-format={OUT_FORMAT}", "--delete", "--backup",
                                          f"--backup-dir={tmp_path}/trash", f"{source}/./", f"{dest}/"])
    for run in ("first", "second"):
        found[f"{run}-plain"] = re.sub(rb"(?m)^([<>ch.*][^\n]{10}) \d+ ", rb"\1 ", found[f"{run}-sized"])
        assert found[f"{run}-plain"] != found[f"{run}-sized"]
    return found


def read(data: bytes, piece: int, **options: bool) -> tuple[OutputReader, list[dict]]:
    events: list[dict] = []
    reader = OutputReader(events.append, **options)
    for i in range(0, len(data), piece):  # in awkward pieces, as a growing log is read
        reader.feed(data[i:i + piece])
    reader.close()
    return reader, events


def parsed(data: bytes) -> tuple[LogParser, list[dict]]:
    events: list[dict] = []
    parser = LogParser(events.append)
    parser.feed(data)
    parser.close()
    return parser, events


@pytest.mark.parametrize("piece", [1, 7, 1 << 20])
@pytest.mark.parametrize("run", ["first", "second"])
@pytest.mark.parametrize("listed", [True, False])
def test_the_reader_agrees_with_the_laptops_parser(runs: dict[str, bytes], piece: int, run: str,
                                                   listed: bool) -> None:
    """The same totals, items (their size left out of the name) and skipped entries, whatever the pieces; a real
    run (not LISTED: counted a block at a time) has the same counts and sends no item event."""
    parser, expected = parsed(runs[f"{run}-plain"])
    wanted_items = [(e["change"], e["path"]) for e in expected if e["event"] == "item"]
    if not listed:
        expected, wanted_items = [e for e in expected if e["event"] != "item"], []
    for form, sized in (("sized", True), ("plain", False)):
        reader, events = read(runs[f"{run}-{form}"], piece, sized=sized, items=listed, warn_small=not listed)
        assert (reader.new_files, reader.changed_files, reader.new_folders) == \
            (parser.new_files, parser.changed_files, parser.new_folders), form
        assert reader.deleted == parser.deleted and reader.deleted_count == len(parser.deleted)
        assert reader.skipped == parser.skipped and sorted(reader.skipped) == ["fifo", "link"]
        assert reader.stats == parser.stats and reader.messages == parser.messages == []
        assert reader.current == parser.current
        items = [(e["change"], e["path"]) for e in events if e["event"] == "item"]
        assert items == wanted_items, form
        last, wanted = ([e for e in found if e["event"] == "progress"][-1] for found in (events, expected))
        if listed:
            assert last == wanted, form
        else:  # counted a block at a time: the latest name of the block rides with its latest progress line
            assert {**last, "current": ""} == {**wanted, "current": ""}, form
    if run == "first" and listed:
        assert ("cd+++++++++", "d/e/") in items and (">f+++++++++", "d/e/g h.txt") in items
        assert reader.stats["files_total"] == 3 and reader.stats["bytes_copied"] == 1010 + (1 << 20)
    if run == "first":
        assert reader.stats["files_total"] == 3 and reader.stats["bytes_copied"] == 1010 + (1 << 20)
    else:
        assert reader.deleted == ["d/e/g h.txt"] and reader.changed_files == 1


def test_item_sizes_count_small_files_per_folder_and_links_are_warned_about(runs: dict[str, bytes]) -> None:
    reader, events = read(runs["first-sized"], 1 << 16, items=False, warn_small=True)
    assert reader.small_files == 2  # d/f and "d/e/g h.txt"; big.bin is 1 MiB: not small
    assert reader.per_folder == {b"": 2, b"d": 2, b"d/e": 1}  # files copied and folders made, by parent
    assert not [e for e in events if e["event"] == "item"]
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert warnings == ["2 symbolic links are not copied (Drive cannot hold links, and colabssh never follows one "
                        "out of the tree; special files are skipped too)"]
    reader = OutputReader(warn_small=True)
    reader.many_small = 2
    reader.feed(runs["first-sized"])
    reader.close()
    assert reader.warnings[0][0].startswith("2 small files so far: Google Drive is slow with many small files")


def test_only_the_latest_progress_line_of_a_chunk_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """100,000 itemized files with three progress updates each: the progress pattern is matched once per event
    (one per chunk at most), not once per line."""
    lines = []
    for i in range(100_000):
        lines.append(f">f+++++++++ {1000 + i % 7} w/d{i // 100:04d}/f{i:06d}.txt\n".encode())
        lines.append(f"\r{i * 1000:>15,}  50%  1.00MB/s  0:00:01  \r{i * 1000:>15,}  50%  1.00MB/s  0:00:01 "
                     f"(xfr#{i + 1}, to-chk={100_000 - i - 1}/100000)\n".encode())
    data = b"".join(lines)
    calls = []
    pattern = sync_output._PROGRESS

    class Counting:
        def match(self, text: str) -> object:
            calls.append(text)
            return pattern.match(text)

    monkeypatch.setattr(sync_output, "PROGRESS_EVERY", 0.0)
    reader = OutputReader(items=False, warn_small=True)
    monkeypatch.setattr(sync_output, "_PROGRESS", Counting())
    chunks = 0
    for i in range(0, len(data), 1 << 20):
        reader.feed(data[i:i + (1 << 20)])
        chunks += 1
    reader.close()
    assert len(calls) <= chunks + 1 and calls[-1].strip().endswith("to-chk=0/100000)")
    assert reader.new_files == reader.small_files == 100_000 and reader.current == "w/d0999/f099999.txt"
    assert max(reader.per_folder.values()) == 100 and b"w" not in reader.per_folder


def test_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Folders counted, names kept and line length are all capped; the counts stay exact."""
    monkeypatch.setattr(sync_output, "FOLDERS_MAX", 64)
    reader = OutputReader(items=False, warn_small=True)
    busy = b"".join(b">f+++++++++ 10 busy/f%d\n" % i for i in range(500))
    spread = b"".join(b">f+++++++++ 10 spread/d%d/f\n" % i for i in range(5000))
    gone = b"".join(b"*deleting   0 old/f%d\n" % i for i in range(300))
    links = b"".join(b'skipping non-regular file "l%d"\n' % i for i in range(300))
    reader.feed(busy + spread + gone + links)
    reader.feed(b"\0" * (8 * LINE_MAX))  # a line without end: cut, the rest dropped
    reader.feed(b"\0" * (8 * LINE_MAX) + b"\nsent 1 bytes\n")
    reader.close()
    assert len(reader.per_folder) <= 64 and reader.per_folder[b"busy"] == 500
    assert reader.deleted_count == 300 and len(reader.deleted) == sync_output.KEPT
    assert reader.skipped_count == 300 and len(reader.skipped) == sync_output.KEPT
    assert reader.small_files == 5500 and [len(m) for m in reader.messages] == [LINE_MAX]
    assert len(reader._pending) == 0


def test_many_small_files_are_warned_about_once_as_soon_as_they_are_past_the_threshold() -> None:
    events: list[dict] = []
    reader = OutputReader(events.append, items=False, warn_small=True)
    reader.many_small, reader.many_in_one = 1000, 40
    reader.feed(b"".join(b">f+++++++++ 10 frames/f%d\n" % i for i in range(50)))
    assert [e["message"] for e in events if e["event"] == "warning"] == [
        "50 small files so far; frames alone holds 50 entries: Google Drive is slow with many small files, and its "
        "mount can time out on big folders"]  # before the copy ends: there is time to stop it
    reader.feed(b"".join(b">f+++++++++ 10 frames/g%d\n" % i for i in range(2000)))
    reader.close()
    assert len([e for e in events if e["event"] == "warning"]) == 1
    assert reader.small_files == 2050 and reader.busiest == (b"frames", 2050)


def test_progress_is_seen_when_a_chunk_ends_with_the_next_files_item_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """rsync's real order: a file's item line, then its progress lines, then the next file's item line. A chunk
    read while the next file starts ends with that item: its progress line stands before it and must be seen
    (else the laptop's bar stays at 0% for the whole of a sync of big files)."""
    monkeypatch.setattr(sync_output, "PROGRESS_EVERY", 0.0)
    events: list[dict] = []
    reader = OutputReader(events.append, items=False, warn_small=False)
    for i in range(1, 4):
        reader.feed(f">f+++++++++ 20000000 big/f{i}.bin\n\r".encode()
                    + f"     {i * 20_000_000:,}  {i * 10}%  150.00MB/s    0:00:00 (xfr#{i}, to-chk={30 - i}/32)"
                      f"\r     {i * 20_000_000:,}  {i * 10}%  150.00MB/s    0:00:00 (xfr#{i}, to-chk={30 - i}/32)"
                      f"\n>f+++++++++ 20000000 big/f{i + 1}.bin\n\r".encode())
    progress = [event for event in events if event["event"] == "progress"]
    assert [event["bytes"] for event in progress] == [20_000_000, 40_000_000, 60_000_000]
    assert [event["files"] for event in progress] == [1, 2, 3] and progress[-1]["current"] == "big/f4.bin"


def test_the_files_done_never_go_back_while_a_big_file_is_part_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """rsync's progress lines in the middle of a file carry no (xfr#N, to-chk=M/T): the count of files done so far
    stays as the last line that had one said, not 0."""
    monkeypatch.setattr(sync_output, "PROGRESS_EVERY", 0.0)
    events: list[dict] = []
    reader = OutputReader(events.append, items=False, warn_small=False)
    reader.feed(b">f+++++++++ 512 a.txt\n\r        512 0%  0.00kB/s  0:00:00 (xfr#1, to-chk=3/5)\n\r")
    reader.feed(b"    268,435,456  26%  256.00MB/s    0:00:02\r")
    reader.feed(b"    536,870,912  53%  256.00MB/s    0:00:01 (xfr#2, to-chk=1/5)\r")
    files = [event["files"] for event in events if event["event"] == "progress"]
    assert files == [1, 1, 2]
