"""A portal's REST budget, shared by every concurrent worker through one DynamoDB item.

Bitrix24 meters each portal with a leaky bucket (threshold X, drained Y per second; limits.md). All
workers spend from the same budget, so they keep the bucket's level in the table
(pk=PORTAL#member_id, sk=RATE) and change it with conditional writes: a request is granted only if
adding it keeps the level at or under X. QUERY_LIMIT_EXCEEDED fills our view of the bucket (the portal
knows better), OPERATION_TIME_LIMIT blocks that method until the portal's operating_reset_at.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from b24core.portals.keys import RATE_SK, portal_pk

#: our grant and the portal's count of the request are milliseconds apart, and a request timed to the
#: exact edge would sometimes meet QUERY_LIMIT_EXCEEDED. Costs EDGE / Y seconds once per busy spell.
EDGE = 0.25
#: How recently another worker must have spent a portal's budget for reads to count as shared.
SHARED_WINDOW_S = 60.0


@dataclass(frozen=True)
class RateLimit:
    threshold: float = 50.0  # X
    drain_per_s: float = 2.0  # Y


@dataclass(eq=False)  # a service, compared by identity
class RateLimiter:
    client: Any
    table_name: str
    default: RateLimit
    clock: Callable[[], float] = time.time
    attempts: int = 8
    #: This process (one worker at a time in a Lambda environment): whose spend the item last recorded.
    spender: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        self._others_seen: dict[str, float] = {}  # member_id -> when another spender was last seen
        self._limits: dict[str, RateLimit] = {}  # member_id -> its limit, as last read

    def shared(self, member_id: str) -> bool:
        """Another worker spent this portal's budget within SHARED_WINDOW_S: reads may overlap (the
        worker's read claims pay only then)."""
        return self.clock() - self._others_seen.get(member_id, float("-inf")) < SHARED_WINDOW_S

    def _key(self, member_id: str) -> dict[str, Any]:
        return {"pk": {"S": portal_pk(member_id)}, "sk": {"S": RATE_SK}}

    def _read(self, member_id: str) -> dict[str, Any]:
        got = self.client.get_item(TableName=self.table_name, Key=self._key(member_id), ConsistentRead=True)
        item: dict[str, Any] = got.get("Item") or {}
        self._limits[member_id] = self.limit_for(item)
        return item

    def limit_for(self, item: dict[str, Any]) -> RateLimit:
        x = float(item["x"]["N"]) if "x" in item else self.default.threshold
        y = float(item["y"]["N"]) if "y" in item else self.default.drain_per_s
        return RateLimit(x, y)

    def acquire(self, member_id: str, cost: float = 1.0, method: str | None = None) -> float:
        """Spend ``cost`` now and return 0, or return how many seconds to wait before asking again."""
        for _ in range(self.attempts):
            item = self._read(member_id)
            now = self.clock()
            self._note_spender(member_id, item, now)
            limit = self.limit_for(item)
            blocked = _blocked_until(item, method)
            if blocked > now:
                return blocked - now
            level = float(item["level"]["N"]) if "level" in item else 0.0
            at = float(item["at"]["N"]) if "at" in item else now
            level = max(0.0, level - max(0.0, now - at) * limit.drain_per_s)
            if level + cost > limit.threshold:
                return (level + cost - limit.threshold + EDGE) / limit.drain_per_s
            if self._write(member_id, item, level + cost, now):
                return 0.0
        return 0.05  # heavy contention: back off briefly and try again

    def request_s(self, member_id: str) -> float:
        """Seconds of the portal's budget one request takes once the burst is spent (1 / Y); from the
        item this process last read for the portal, else read now."""
        limit = self._limits.get(member_id) or self.limit_for(self._read(member_id))
        return 1.0 / limit.drain_per_s

    def wait_for(self, member_id: str, cost: float = 1.0, method: str | None = None) -> float:
        """Seconds until ``cost`` requests would fit, spending nothing (0 when they fit now)."""
        level, limit, blocked, now = self._level(member_id, method)
        over = level + cost - limit.threshold
        return max(blocked - now, (over + EDGE) / limit.drain_per_s if over > 0 else 0.0, 0.0)

    def _level(self, member_id: str, method: str | None) -> tuple[float, RateLimit, float, float]:
        item = self._read(member_id)
        now = self.clock()
        limit = self.limit_for(item)
        level = float(item["level"]["N"]) if "level" in item else 0.0
        at = float(item["at"]["N"]) if "at" in item else now
        level = max(0.0, level - max(0.0, now - at) * limit.drain_per_s)
        return level, limit, _blocked_until(item, method), now

    def saturate(self, member_id: str) -> None:
        """The portal answered QUERY_LIMIT_EXCEEDED: its bucket is full whatever we counted."""
        for _ in range(self.attempts):
            item = self._read(member_id)
            if self._write(member_id, item, self.limit_for(item).threshold, self.clock()):
                return

    def block(self, member_id: str, method: str, until: float) -> None:
        """OPERATION_TIME_LIMIT: no calls of ``method`` until the portal's operating_reset_at."""
        self.client.update_item(
            TableName=self.table_name,
            Key=self._key(member_id),
            UpdateExpression="SET #b = if_not_exists(#b, :empty)",
            ExpressionAttributeNames={"#b": "blocked"},
            ExpressionAttributeValues={":empty": {"M": {}}},
        )
        self.client.update_item(
            TableName=self.table_name,
            Key=self._key(member_id),
            UpdateExpression="SET #b.#m = :until",
            ExpressionAttributeNames={"#b": "blocked", "#m": method},
            ExpressionAttributeValues={":until": {"N": repr(until)}},
        )

    def configure(self, member_id: str, limit: RateLimit) -> None:
        """Per-portal X/Y (a box sets its own; Enterprise has 250/5)."""
        self._limits[member_id] = limit
        self.client.update_item(
            TableName=self.table_name,
            Key=self._key(member_id),
            UpdateExpression="SET x = :x, y = :y",
            ExpressionAttributeValues={
                ":x": {"N": repr(limit.threshold)},
                ":y": {"N": repr(limit.drain_per_s)},
            },
        )

    def _note_spender(self, member_id: str, item: dict[str, Any], now: float) -> None:
        by, at = item.get("by", {}).get("S"), item.get("at", {}).get("N")
        if by and by != self.spender and at and now - float(at) < SHARED_WINDOW_S:
            self._others_seen[member_id] = now

    def _write(self, member_id: str, old: dict[str, Any], level: float, now: float) -> bool:
        version = int(old["v"]["N"]) if "v" in old else 0
        names = {"#v": "v"}
        values: dict[str, Any] = {
            ":l": {"N": repr(level)},
            ":at": {"N": repr(now)},
            ":nv": {"N": str(version + 1)},
            ":by": {"S": self.spender},
        }
        if version:
            condition = "#v = :ov"
            values[":ov"] = {"N": str(version)}
        else:
            condition = "attribute_not_exists(#v)"
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(member_id),
                UpdateExpression="SET #l = :l, #at = :at, #v = :nv, #by = :by",
                ConditionExpression=condition,
                ExpressionAttributeNames={**names, "#l": "level", "#at": "at", "#by": "by"},
                ExpressionAttributeValues=values,
            )
            return True
        except self.client.exceptions.ConditionalCheckFailedException:
            return False


def _blocked_until(item: dict[str, Any], method: str | None) -> float:
    if method is None:
        return 0.0
    value = item.get("blocked", {}).get("M", {}).get(method)
    return float(value["N"]) if value else 0.0
