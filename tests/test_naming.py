"""The one natural sort key."""
from __future__ import annotations

import pytest

from epiflow.naming import natural_key


@pytest.mark.parametrize("names, expected", [
    (["cam10", "cam2", "cam1"], ["cam1", "cam2", "cam10"]),
    (["cam_10", "cam_2", "cam_01"], ["cam_01", "cam_2", "cam_10"]),
    (["Cam2", "cam10", "cam1"], ["cam1", "Cam2", "cam10"]),         # case does not decide order
    (["take10", "take2", "take1b", "take1a"], ["take1a", "take1b", "take2", "take10"]),
    (["10", "9", "a", "1a"], ["1a", "9", "10", "a"]),               # digits first, mixed keys
    (["f_000012.json", "f_000003.json"], ["f_000003.json", "f_000012.json"]),
])
def test_numbers_sort_by_value(names, expected):
    assert sorted(names, key=natural_key) == expected


def test_non_strings_and_equal_numbers():
    assert natural_key(7) == ["", 7, ""]
    assert natural_key("cam01") == natural_key("cam1")  # zero padding does not change the order
