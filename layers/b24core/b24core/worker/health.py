"""Per-portal health the operator sees in ``b24app portals show``: when the portal's events were last
received at intake and last processed by the worker.

Intake writes nothing to the table (it must stay fast and cannot change a portal), so the worker keeps
both times: ``received`` is the newest ``received_at`` (the intake's clock, carried in the message; an
event the worker sent back delayed carries the time it was sent back) among the portal's events it
finished, ``processed`` when it finished them. One UpdateItem per portal per batch at most, and a warm
process writes a portal again only after ``MIN_INTERVAL_S`` (the times are for a human reading "a
minute ago", not for logic). The item has a time to live, so a portal uninstalled meanwhile leaves
nothing lasting behind.

Item: pk=PORTAL#member_id, sk=HEALTH, ``r`` (last received), ``p`` (last processed), ``ttl``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from b24core.portals.keys import HEALTH_SK, portal_pk
from b24core.worker.read_marks import _warn

MIN_INTERVAL_S = 60.0
TTL_S = 30 * 24 * 3600


@dataclass(frozen=True)
class Health:
    last_received_at: int = 0
    last_processed_at: int = 0


class PortalHealth:
    """The DynamoDB implementation (the worker writes, the CLI reads)."""

    def __init__(self, client: Any, table_name: str, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.table_name = table_name
        self.clock = clock
        self._cache: dict[str, float] = {}  # member_id -> when this process last wrote it (deliberate)

    def record(self, processed: Mapping[str, int]) -> int:
        """Write the batch's times (member_id -> newest received_at); returns how many were written."""
        now = self.clock()
        written = 0
        for member_id, received_at in processed.items():
            if now - self._cache.get(member_id, -MIN_INTERVAL_S) < MIN_INTERVAL_S:
                continue
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={"pk": {"S": portal_pk(member_id)}, "sk": {"S": HEALTH_SK}},
                    UpdateExpression="SET r = :r, p = :p, #ttl = :ttl",
                    ExpressionAttributeNames={"#ttl": "ttl"},
                    ExpressionAttributeValues={
                        ":r": {"N": str(int(received_at or now))},
                        ":p": {"N": str(int(now))},
                        ":ttl": {"N": str(int(now + TTL_S))},
                    },
                )
            except Exception as exc:  # only the operator's view is older: never fail a batch for it
                _warn("portal health not written", member_id, exc)
                continue
            self._cache[member_id] = now
            written += 1
        return written

    def get(self, member_id: str) -> Health | None:
        item = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": portal_pk(member_id)}, "sk": {"S": HEALTH_SK}},
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None
        return Health(
            int(float(item["r"]["N"])) if "r" in item else 0, int(float(item["p"]["N"])) if "p" in item else 0
        )


class InMemoryPortalHealth:
    """The same contract for unit tests."""

    def __init__(self) -> None:
        self.items: dict[str, Health] = {}

    def record(self, processed: Mapping[str, int]) -> int:
        now = int(time.time())
        for member_id, received_at in processed.items():
            self.items[member_id] = Health(received_at or now, now)
        return len(processed)

    def get(self, member_id: str) -> Health | None:
        return self.items.get(member_id)
