"""The one size formatter (colab_bootstrap/units.py): binary units on both sides, as `colabssh status` shows them."""

from __future__ import annotations

import pytest

from colab_bootstrap.units import human_size


@pytest.mark.parametrize(("size", "shown"), [
    (0, "0 B"), (183, "183 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (1024 ** 2 - 1, "1024.0 KiB"), (1024 ** 2, "1.0 MiB"), (10 ** 9, "953.7 MiB"), (20 * 1024 ** 3, "20.0 GiB"),
    (1024 ** 4, "1.0 TiB"), (1024 ** 5, "1024.0 TiB"),
])
def test_sizes_are_shown_in_binary_units(size, shown):
    assert human_size(size) == shown
