"""Numbers a portal sends are read strictly: garbage is None, never an exception."""

from __future__ import annotations

import pytest

from b24core.bitrix.values import as_epoch, as_float, as_int, is_digits
from b24core.tokens.client import _counts
from b24core.worker.read_marks import read_time

GARBAGE = [
    "²",
    "٣",
    "1e309",
    "nan",
    "inf",
    "-inf",
    "",
    " ",
    "12a",
    "9" * 400,
    [],
    {},
    None,
    True,
    1e309,
    -1.5e308,
]


@pytest.mark.parametrize("value", GARBAGE)
def test_garbage_is_never_a_number(value):
    assert not is_digits(value)
    assert as_int(value) is None
    assert as_epoch(value) is None


def test_plain_values_are_read():
    assert is_digits("50") and is_digits(50) and as_int("-1") == -1 and as_int(7) == 7
    assert as_float("1.5") == 1.5 and as_epoch(1_700_000_000) == 1.7e9 and as_float(float("nan")) is None


def test_a_batch_answer_full_of_garbage_counts_nothing_and_raises_nothing():
    assert _counts({"a": "²", "b": "1e309", "c": [], "d": "50", "e": 3, "f": True}) == {"d": 50, "e": 3}
    assert _counts("²") == {} and _counts(["5", "x"]) == {"0": 5}
    assert read_time({"start": "1e309"}) is None and read_time({"start": "²"}) is None
