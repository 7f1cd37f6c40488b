"""The app's own data for one portal, in the app's one table beside the portal's record.

Items live in the portal's partition (pk=PORTAL#member_id, sk=APP#key), so an uninstall with CLEAN
removes them with everything else the app keeps for the portal, and one portal's items can never be
read through another portal's storage: the partition is fixed when the storage is made, never taken
from a key. Values are JSON objects kept as one string attribute, so what an author stores comes back
exactly (no DynamoDB number or set conversions).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from b24core.aws.batch_write import batch_write
from b24core.portals.keys import APP_PREFIX as PREFIX
from b24core.portals.keys import portal_pk

MAX_KEY = 200
MAX_VALUE_BYTES = 350_000  # under DynamoDB's 400 KB item limit with the keys and attributes


class AppDataError(ValueError):
    pass


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY or not key.isprintable():
        raise AppDataError(f"a storage key is 1..{MAX_KEY} printable characters")
    return key


def _encode(value: dict[str, Any]) -> str:
    if not isinstance(value, dict):
        raise AppDataError("a stored value is a JSON object (dict)")
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if len(text.encode()) > MAX_VALUE_BYTES:
        raise AppDataError(f"a stored value is at most {MAX_VALUE_BYTES} bytes of JSON")
    return text


class AppStorage(Protocol):
    """Key → JSON object, for one portal. Keys sort as strings; ``items(prefix)`` lists a range."""

    def get(self, key: str) -> dict[str, Any] | None: ...
    def put(self, key: str, value: dict[str, Any]) -> None: ...
    def delete(self, key: str) -> None: ...
    def items(self, prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]: ...


class InMemoryAppStorage:
    """For unit tests of handlers."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self.data.get(_check_key(key))
        return None if raw is None else dict(json.loads(raw))

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.data[_check_key(key)] = _encode(value)

    def delete(self, key: str) -> None:
        self.data.pop(_check_key(key), None)

    def items(self, prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
        for key in sorted(self.data):
            if key.startswith(prefix):
                yield key, dict(json.loads(self.data[key]))


class DynamoAppStorage:
    """One portal's app data through a low-level DynamoDB client (the process's pooled one)."""

    def __init__(self, client: Any, table_name: str, member_id: str) -> None:
        self._db = client
        self._table = table_name
        self._pk = portal_pk(member_id)

    def _key(self, key: str) -> dict[str, Any]:
        return {"pk": {"S": self._pk}, "sk": {"S": PREFIX + _check_key(key)}}

    def get(self, key: str) -> dict[str, Any] | None:
        item = self._db.get_item(TableName=self._table, Key=self._key(key), ConsistentRead=True).get("Item")
        return None if not item else dict(json.loads(item["data"]["S"]))

    def put(self, key: str, value: dict[str, Any]) -> None:
        item = {**self._key(key), "data": {"S": _encode(value)}}
        self._db.put_item(TableName=self._table, Item=item)

    def delete(self, key: str) -> None:
        self._db.delete_item(TableName=self._table, Key=self._key(key))

    def write_many(self, writes: Mapping[str, dict[str, Any] | None]) -> None:
        """Puts (a value) and deletes (None) in BatchWriteItem requests of 25 (aws/batch_write.py): a
        storm's mirror costs one request per 25 items instead of one each. Raises when some are not
        written, so the caller retries them."""
        ops: list[dict[str, Any]] = []
        for key, value in writes.items():
            if value is None:
                ops.append({"DeleteRequest": {"Key": self._key(key)}})
            else:
                ops.append({"PutRequest": {"Item": {**self._key(key), "data": {"S": _encode(value)}}}})
        batch_write(self._db, self._table, ops)

    def write_actions(self, writes: Mapping[str, dict[str, Any] | None]) -> list[dict[str, Any]]:
        """The same writes as TransactWriteItems actions, for the worker's guard to send with its own
        (worker/guard_ledger.py): an event's effect and its "completed" land together or not at all."""
        actions: list[dict[str, Any]] = []
        for key, value in writes.items():
            if value is None:
                actions.append({"Delete": {"TableName": self._table, "Key": self._key(key)}})
            else:
                item = {**self._key(key), "data": {"S": _encode(value)}}
                actions.append({"Put": {"TableName": self._table, "Item": item}})
        return actions

    def items(self, prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
        start: dict[str, Any] | None = None
        while True:
            args: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
                "ExpressionAttributeValues": {":pk": {"S": self._pk}, ":p": {"S": PREFIX + prefix}},
            }
            if start:
                args["ExclusiveStartKey"] = start
            page = self._db.query(**args)
            for item in page.get("Items", []):
                yield item["sk"]["S"][len(PREFIX) :], dict(json.loads(item["data"]["S"]))
            start = page.get("LastEvaluatedKey")
            if not start:
                return
