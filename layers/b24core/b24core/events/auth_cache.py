"""What intake needs to verify an event — the portal's application_token and state — cached per process.

Steady traffic must cost no table read per event, so each warm EventsFunction keeps the answer for a
short TTL. A mismatch is re-read once before refusing (ONAPPUPDATE rotates the token, and another
process may have stored the new one); uninstall and update drop the entry in the process that saw them.
Reads use the plain boto3 client (no ORM) because this is the cold-start critical path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from b24core.portals.keys import PORTAL_SK, portal_pk
from b24core.portals.schema import read_enum
from b24core.portals.states import PortalState


@dataclass(frozen=True)
class PortalAuth:
    member_id: str
    state: PortalState
    application_token: str = field(repr=False)
    #: The outgoing webhook's token, when one is connected (b24core.trust.webhooks).
    webhook_token: str = field(default="", repr=False)


class AuthReader(Protocol):
    def read(self, member_id: str) -> PortalAuth | None: ...


class DynamoAuthReader:
    """One consistent GetItem of the portal record, projecting only what verification needs."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table_name = table_name
        self.reads = 0

    def read(self, member_id: str) -> PortalAuth | None:
        self.reads += 1
        item = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": portal_pk(member_id)}, "sk": {"S": PORTAL_SK}},
            ProjectionExpression="#s, application_token, webhook_token",
            ExpressionAttributeNames={"#s": "state"},
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None
        return PortalAuth(
            member_id=member_id,
            # A state a newer release added is not "deleted": its events are taken (never lost).
            state=read_enum(PortalState, item["state"]["S"], PortalState.BLOCKED, [], "state"),
            application_token=item.get("application_token", {}).get("S", ""),
            webhook_token=item.get("webhook_token", {}).get("S", ""),
        )


class AuthCache:
    def __init__(
        self,
        reader: AuthReader,
        ttl_s: float = 60.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader = reader
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._cache: dict[str, tuple[float, PortalAuth | None]] = {}

    def get(self, member_id: str, fresh: bool = False) -> PortalAuth | None:
        now = self.clock()
        hit = None if fresh else self._cache.get(member_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = self.reader.read(member_id)
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        # Unknown portals are cached briefly too, so a flood of forged member_ids cannot hammer the table.
        self._cache[member_id] = (now + (self.ttl_s if value is not None else min(5.0, self.ttl_s)), value)
        return value

    def drop(self, member_id: str) -> None:
        self._cache.pop(member_id, None)
