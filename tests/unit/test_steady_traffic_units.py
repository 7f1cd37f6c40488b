"""bench/steady_traffic.py: recorded DynamoDB calls become the request units on-demand bills (items at
most 4 KB read, 1 KB written), and item sizes follow DynamoDB's rules closely enough to tell 1 KB/4 KB."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from steady_traffic import item_size, units  # noqa: E402


def _call(operation: str, items: int | None = 1, consistent: bool = False) -> dict[str, object]:
    line: dict[str, object] = {"service": "dynamodb", "operation": operation}
    if items is not None:
        line["Items"] = items
    if consistent:
        line["Consistent"] = True
    return line


def test_reads_cost_half_a_unit_unless_consistent_and_writes_a_unit_an_item() -> None:
    calls = [
        _call("GetItem"),
        _call("GetItem", consistent=True),
        _call("BatchGetItem", 4),
        _call("BatchGetItem", 2, consistent=True),
        _call("PutItem"),
        _call("UpdateItem"),
        _call("DeleteItem"),
        _call("BatchWriteItem", 25),
    ]
    assert units(calls) == (0.5 + 1 + 2 + 2, 3 + 25)


def test_transactions_cost_twice_per_item() -> None:
    assert units([_call("TransactWriteItems", 3)]) == (0.0, 6.0)
    assert units([_call("TransactGetItems", 2)]) == (4.0, 0.0)


def test_a_query_counts_as_one_item_at_least() -> None:
    assert units([_call("Query", None, consistent=True), _call("Query", None)]) == (1.5, 0.0)


@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"pk": {"S": "PORTAL#abc"}}, 2 + 10),
        ({"n": {"N": "12345"}}, 1 + 3),
        ({"b": {"B": b"\x00" * 100}}, 1 + 100),
        ({"ok": {"BOOL": True}}, 2 + 1),
        ({"m": {"M": {"k": {"S": "v"}}}}, 1 + 3 + 1 + 1 + 1),
        ({"l": {"L": [{"S": "ab"}, {"S": "c"}]}}, 1 + 3 + (1 + 2) + (1 + 1)),
    ],
)
def test_item_sizes(item: dict[str, object], size: int) -> None:
    assert item_size(item) == size
