"""The IDs of each kind of object the audit knows exist on a portal: what reconciliation compares the
portal's current IDs with to find deletions whose event never came.

A portal may hold hundreds of thousands of objects, more than one DynamoDB item can carry (400 KB), so
the set is split by ID range: one item per ``SHARD`` IDs (pk=PORTAL#member_id, sk=IDS#kind#shard, a
number set), at most ~100 KB each. Adding IDs is an ``ADD`` to the set (no read); reconciliation
replaces one shard at a time, so a run that stops midway leaves every shard whole.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Protocol

from b24core.portals.keys import IDS_PREFIX, ids_sk, portal_pk

SHARD = 10_000  # IDs per item: 10,000 numbers of up to 10 digits stay far below 400 KB


def shard_of(object_id: int) -> int:
    return object_id // SHARD


class KnownIds(Protocol):
    def add(self, member_id: str, kind: str, ids: Iterable[int]) -> None: ...

    def shard(self, member_id: str, kind: str, shard: int) -> set[int]: ...

    def replace(self, member_id: str, kind: str, shard: int, ids: set[int]) -> None: ...

    def shards(self, member_id: str, kind: str) -> list[int]:
        """The shards holding any ID, ascending (their keys only)."""
        ...


def _by_shard(ids: Iterable[int]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = defaultdict(set)
    for i in ids:
        out[shard_of(i)].add(i)
    return out


class InMemoryKnownIds:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str, int], set[int]] = {}

    def add(self, member_id: str, kind: str, ids: Iterable[int]) -> None:
        for shard, part in _by_shard(ids).items():
            self.items.setdefault((member_id, kind, shard), set()).update(part)

    def shard(self, member_id: str, kind: str, shard: int) -> set[int]:
        return set(self.items.get((member_id, kind, shard), set()))

    def replace(self, member_id: str, kind: str, shard: int, ids: set[int]) -> None:
        if ids:
            self.items[(member_id, kind, shard)] = set(ids)
        else:
            self.items.pop((member_id, kind, shard), None)

    def shards(self, member_id: str, kind: str) -> list[int]:
        return sorted(s for (m, k, s), ids in self.items.items() if m == member_id and k == kind and ids)


class DynamoKnownIds:
    """Number sets in the app's table, through the low-level client (ADD/DELETE need no read)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table = table_name

    def _key(self, member_id: str, kind: str, shard: int) -> dict[str, Any]:
        return {"pk": {"S": portal_pk(member_id)}, "sk": {"S": ids_sk(kind, shard)}}

    def add(self, member_id: str, kind: str, ids: Iterable[int]) -> None:
        for shard, part in sorted(_by_shard(ids).items()):
            self.client.update_item(
                TableName=self.table,
                Key=self._key(member_id, kind, shard),
                UpdateExpression="ADD ids :ids",
                ExpressionAttributeValues={":ids": {"NS": [str(i) for i in sorted(part)]}},
            )

    def shard(self, member_id: str, kind: str, shard: int) -> set[int]:
        answer = self.client.get_item(
            TableName=self.table, Key=self._key(member_id, kind, shard), ConsistentRead=True
        )
        return {int(v) for v in (answer.get("Item") or {}).get("ids", {}).get("NS", [])}

    def replace(self, member_id: str, kind: str, shard: int, ids: set[int]) -> None:
        key = self._key(member_id, kind, shard)
        if not ids:  # a number set cannot be empty: no IDs, no item
            self.client.delete_item(TableName=self.table, Key=key)
            return
        item = {**key, "ids": {"NS": [str(i) for i in sorted(ids)]}}
        self.client.put_item(TableName=self.table, Item=item)

    def shards(self, member_id: str, kind: str) -> list[int]:
        out: list[int] = []
        query: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": portal_pk(member_id)},
                ":prefix": {"S": f"{IDS_PREFIX}{kind}#"},
            },
            "ProjectionExpression": "sk",
        }
        while True:
            answer = self.client.query(**query)
            out.extend(int(item["sk"]["S"].rsplit("#", 1)[1]) for item in answer.get("Items") or [])
            if not answer.get("LastEvaluatedKey"):
                return out
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
