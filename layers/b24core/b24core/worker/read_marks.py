"""When each object was last read, in the portal's own time, so a later batch can skip a stale event.

In a storm the same object changes again and again, and its events land in different worker batches.
An event whose change happened before the worker's last read of that object asks for nothing new:
the read already showed the change. Both times come from the portal's clock — the event's ``ts`` and
the ``start`` of the read's entry in the batch answer's ``result_time`` — so no clock skew between
the portal and AWS enters the comparison.

``ts`` has whole seconds (a change at 100.9 says 100), hence an event is covered only when the read
started at least ``MARGIN_S`` after ``ts + 1``. Marks are written without conditions: a lost race
leaves an older mark, which only costs a read, never a missed change. Failures to read or write
marks cost reads too and are logged, not raised.

Item: pk=PORTAL#member_id, sk=READ#method#object_id, ``t`` (portal time), ``ttl``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from b24core.aws.batch_write import batch_write
from b24core.aws.logs import logger
from b24core.bitrix.values import as_epoch
from b24core.portals.keys import portal_pk, read_sk

MARGIN_S = 1.0
TTL_S = 24 * 3600
_GET_LIMIT = 100  # BatchGetItem keys per request
_ATTEMPTS = 4

ObjectKey = tuple[str, str]  # (read method, object id)


def event_time(ts: str) -> float | None:
    """An event's ``ts`` (Unix seconds as text) or None when it is not one."""
    return as_epoch(ts)


def read_time(entry: Any) -> float | None:
    """The portal time a batch command started (its ``result_time`` entry), or None."""
    if not isinstance(entry, Mapping):
        return None
    return as_epoch(entry.get("start"))


def covered(ts: str, last_read: float | None) -> bool:
    """True when a read at ``last_read`` (portal time) already saw the change an event at ``ts`` reports."""
    changed = event_time(ts)
    return changed is not None and last_read is not None and last_read >= changed + 1 + MARGIN_S


class MarkTable:
    """Small per-object items of a portal's partition, read and written in DynamoDB batches."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table_name = table_name

    def get_many(self, member_id: str, sks: Iterable[str], attributes: str) -> dict[str, dict[str, Any]]:
        """The items with these sort keys (raw DynamoDB attributes), by sort key; missing ones left out."""
        found: dict[str, dict[str, Any]] = {}
        keys = list(dict.fromkeys(sks))
        pk = {"S": portal_pk(member_id)}
        for start in range(0, len(keys), _GET_LIMIT):
            batch_keys = [{"pk": pk, "sk": {"S": sk}} for sk in keys[start : start + _GET_LIMIT]]
            request: dict[str, Any] = {
                self.table_name: {"Keys": batch_keys, "ProjectionExpression": f"sk, {attributes}"}
            }
            for _ in range(_ATTEMPTS):
                answer = self.client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    found[item["sk"]["S"]] = item
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
        return found

    def put_many(self, member_id: str, items: Mapping[str, dict[str, Any]]) -> None:
        """Put items (sort key -> attributes) unconditionally, with the marks' time to live."""
        expires = str(int(time.time()) + TTL_S)
        pk = {"S": portal_pk(member_id)}
        puts = [
            {"PutRequest": {"Item": {"pk": pk, "sk": {"S": sk}, **attrs, "ttl": {"N": expires}}}}
            for sk, attrs in items.items()
        ]
        batch_write(self.client, self.table_name, puts)


class ReadMarks(MarkTable):
    def last_reads(self, member_id: str, keys: Iterable[ObjectKey]) -> dict[ObjectKey, float]:
        wanted = {read_sk(method, object_id): (method, object_id) for method, object_id in keys}
        found: dict[ObjectKey, float] = {}
        try:
            for sk, item in self.get_many(member_id, wanted, "t").items():
                if sk in wanted and "t" in item:
                    found[wanted[sk]] = float(item["t"]["N"])
        except Exception as exc:  # marks only save reads; without them every event is read
            _warn("read marks unavailable", member_id, exc)
        return found

    def mark(self, member_id: str, reads: Mapping[ObjectKey, float]) -> bool:
        """Write the marks (each put replaces its item, ending a read claim on it); False on failure."""
        try:
            self.put_many(
                member_id,
                {read_sk(method, oid): {"t": {"N": repr(at)}} for (method, oid), at in reads.items()},
            )
        except Exception as exc:
            _warn("read marks not written", member_id, exc)
            return False
        return True


def _warn(message: str, member_id: str, exc: Exception) -> None:
    extra = {"action": "dispatch", "member_id": member_id, "reason": type(exc).__name__}
    logger.warning(message, extra=extra)
