"""The one formatter of sizes and counts (colab_bootstrap/units.py): binary units, nouns in the right number."""

from __future__ import annotations

import pytest

from colab_bootstrap.units import count, human_size, rsync_rate


@pytest.mark.parametrize(("size", "shown"), [
    (0, "0 B"), (183, "183 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (1024 ** 2 - 1, "1024.0 KiB"), (1024 ** 2, "1.0 MiB"), (10 ** 9, "953.7 MiB"), (20 * 1024 ** 3, "20.0 GiB"),
    (1024 ** 4, "1.0 TiB"), (1024 ** 5, "1024.0 TiB"),
])
def test_sizes_are_shown_in_binary_units(size, shown):
    assert human_size(size) == shown


@pytest.mark.parametrize(("n", "noun", "shown"), [
    (0, "file", "0 files"), (1, "file", "1 file"), (2, "file", "2 files"), (1203, "file", "1,203 files"),
    (1, "entry", "1 entry"), (3, "entry", "3 entries"), (2, "process", "2 processes"),
    (2, "symbolic link", "2 symbolic links"), (1, "small file", "1 small file"), (12345, "archive", "12,345 archives"),
])
def test_counts_say_their_noun_in_the_right_number_with_thousands_separators(n, noun, shown):
    assert count(n, noun) == shown


def test_a_count_may_name_an_irregular_plural():
    assert count(2, "child", "children") == "2 children" and count(1, "child", "children") == "1 child"


@pytest.mark.parametrize(("rate", "shown"), [
    ("0.00kB/s", "0 B/s"), ("1000.49kB/s", "1000.5 KiB/s"), ("2.95MB/s", "3.0 MiB/s"), ("1.00GB/s", "1.0 GiB/s"),
    ("512B/s", "512 B/s"), ("", ""), ("n/a", "n/a"),
])
def test_rsyncs_rate_is_shown_in_binary_units(rate, shown):
    """rsync's kB, MB and GB in its progress are powers of 1024 (its --bwlimit=1000 shows as ~1000kB/s)."""
    assert rsync_rate(rate) == shown


def test_took_never_says_zero_seconds():
    from colab_bootstrap.units import took

    assert took(0.0) == took(0.049) == "in under 0.1 s"
    assert took(0.05) == "in 0.1 s" and took(41.26) == "in 41.3 s"
