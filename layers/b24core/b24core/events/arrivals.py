"""When the last outgoing-webhook event of a portal arrived: the evidence the delivery watchdog
(b24core.delivery.watchdog) weighs against the changes the portal made.

The intake is the cold-start and CPU critical path, so marking costs no read and at most one write per
portal per ``MARK_EVERY_S`` in each process: the first event of a portal in that window writes
``at`` (our clock, whole seconds) into one item in a partition of its own (pk=ARRIVAL#member_id,
sk=ARRIVAL), only if it is newer than what is stored (processes may write out of order). The stored
time is therefore at most ``MARK_EVERY_S`` older than the true last arrival; the watchdog allows for
that. A failed write is logged and never fails the intake: the event is already in SQS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from logging import WARNING
from typing import Any, Protocol

from b24core.aws.logs import log_event
from b24core.portals.keys import ARRIVAL_SK, arrival_pk

MARK_EVERY_S = 60


class ArrivalWriter(Protocol):
    def write(self, member_id: str, at: int) -> None: ...


class ArrivalReader(Protocol):
    def last(self, member_id: str) -> int:
        """The last recorded arrival (our clock), 0 when none was ever recorded."""
        ...


class DynamoArrivals:
    """Plain boto3 (no ORM): the intake imports this on its hot path."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table_name = table_name

    def write(self, member_id: str, at: int) -> None:
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": arrival_pk(member_id)},
                    "sk": {"S": ARRIVAL_SK},
                    "member_id": {"S": member_id},
                    "at": {"N": str(int(at))},
                },
                ConditionExpression="attribute_not_exists(#at) OR #at < :at",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues={":at": {"N": str(int(at))}},
            )
        except Exception as exc:
            if _conditional(exc):
                return  # a later arrival is stored already
            raise

    def last(self, member_id: str) -> int:
        item = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": arrival_pk(member_id)}, "sk": {"S": ARRIVAL_SK}},
            ProjectionExpression="#at",
            ExpressionAttributeNames={"#at": "at"},
            ConsistentRead=True,
        ).get("Item")
        return int(item["at"]["N"]) if item and "at" in item else 0


def _conditional(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code == "ConditionalCheckFailedException"


class InMemoryArrivals:
    def __init__(self) -> None:
        self.items: dict[str, int] = {}
        self.writes = 0

    def write(self, member_id: str, at: int) -> None:
        self.writes += 1
        self.items[member_id] = max(self.items.get(member_id, 0), int(at))

    def last(self, member_id: str) -> int:
        return self.items.get(member_id, 0)


@dataclass(eq=False)  # a service, compared by identity
class ArrivalMarks:
    """Per-process throttle in front of the writer (a deliberate cache of the last write per portal)."""

    writer: ArrivalWriter
    every_s: float = MARK_EVERY_S
    clock: Callable[[], float] = time.time
    max_entries: int = 10_000

    def __post_init__(self) -> None:
        self._cache: dict[str, float] = {}

    def seen(self, member_id: str) -> None:
        now = self.clock()
        last = self._cache.get(member_id)
        if last is not None and now - last < self.every_s:
            return
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        self._cache[member_id] = now
        try:
            self.writer.write(member_id, int(now))
        except Exception as exc:  # the event is stored; tried again after every_s, never per event
            log_event(WARNING, "event arrival not recorded", "intake", member_id, error=exc)
