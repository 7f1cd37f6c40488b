"""b24stack.aws_calls: a recorded DynamoDB call carries how many items it touched and whether it read
strongly consistent (what bench/steady_traffic.py turns into request units), never a value."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from b24stack.aws_calls import _counts, install

SECRET = "refresh-token-value-never-recorded"


def _key(n: int) -> dict[str, Any]:
    return {"pk": {"S": f"PORTAL#{n}"}, "sk": {"S": SECRET}}


@pytest.mark.parametrize(
    ("operation", "params", "want"),
    [
        ("GetItem", {"TableName": "T", "Key": _key(1)}, {"Items": 1}),
        (
            "GetItem",
            {"TableName": "T", "Key": _key(1), "ConsistentRead": True},
            {"Items": 1, "Consistent": True},
        ),
        ("PutItem", {"TableName": "T", "Item": _key(1)}, {"Items": 1}),
        ("UpdateItem", {"TableName": "T", "Key": _key(1)}, {"Items": 1}),
        ("DeleteItem", {"TableName": "T", "Key": _key(1)}, {"Items": 1}),
        (
            "BatchGetItem",
            {"RequestItems": {"T": {"Keys": [_key(1), _key(2)]}, "U": {"Keys": [_key(3)]}}},
            {"Items": 3},
        ),
        (
            "BatchGetItem",
            {"RequestItems": {"T": {"Keys": [_key(1), _key(2)], "ConsistentRead": True}}},
            {"Items": 2, "Consistent": True},
        ),
        (
            "BatchWriteItem",
            {"RequestItems": {"T": [{"PutRequest": {"Item": _key(1)}}, {"DeleteRequest": {"Key": _key(2)}}]}},
            {"Items": 2},
        ),
        (
            "TransactWriteItems",
            {"TransactItems": [{"Put": {"TableName": "T", "Item": _key(1)}}, {"Update": {"TableName": "T"}}]},
            {"Items": 2},
        ),
        ("Query", {"TableName": "T", "ConsistentRead": True}, {"Consistent": True}),
    ],
)
def test_each_call_counts_the_items_it_touches(
    operation: str, params: dict[str, Any], want: dict[str, Any]
) -> None:
    assert _counts(operation, params) == want


def test_a_recorded_line_carries_counts_and_never_a_value(tmp_path, monkeypatch) -> None:
    import botocore.session

    monkeypatch.setattr(botocore.session.Session, "create_client", botocore.session.Session.create_client)
    install(str(tmp_path), "F")
    client = botocore.session.get_session().create_client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    model = SimpleNamespace(
        name="BatchGetItem",
        service_model=SimpleNamespace(service_name="dynamodb", signing_name="dynamodb"),
    )
    params = {"RequestItems": {"T": {"Keys": [_key(1), _key(2)], "ConsistentRead": True}}}
    client.meta.events.emit("provide-client-params.dynamodb.BatchGetItem", params=params, model=model)
    line = json.loads((tmp_path / "F.jsonl").read_text().splitlines()[-1])
    assert line == {
        "service": "dynamodb",
        "signing": "dynamodb",
        "operation": "BatchGetItem",
        "Tables": ["T"],
        "Items": 2,
        "Consistent": True,
    }
    assert SECRET not in json.dumps(line)
