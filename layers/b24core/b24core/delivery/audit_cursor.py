"""What one audit found, and where its cursor goes next: the result types and the arithmetic of the
listing's start (overlap, late commits) and of the cursor and its boundary (b24core.delivery.audit)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from b24core.delivery.audit_store import BOUNDARY_MAX, Feed
from b24core.delivery.portal_clock import PortalClock

#: A first audit starts this long before its ``since``: the portal's clock may run behind ours.
FIRST_MARGIN_S = 300


@dataclass(frozen=True)
class Change:
    key: str  # "ID@MODIFIED"
    id: int
    stamp: str
    at: float  # portal clock
    created_at: float | None


@dataclass
class KindResult:
    kind: str
    judged: int = 0  # changes old enough to judge
    delivered: int = 0  # an arrival covered them
    by_event: int = 0  # ... and a real event (not the bundle's own audit or polling)
    missed: int = 0  # no arrival: sent now
    polled: int = 0  # sent by polling (a route without events)
    young: int = 0  # inside the grace period: judged later
    deletes_missed: int = 0
    deletes_polled: int = 0
    pages: int = 0
    requests: int = 0
    reconcile_requests: int = 0  # of ``requests``: those of the reconciliation
    incomplete: bool = False  # the page cap, the budget, the deadline or SQS stopped it early
    budget_spent: bool = False
    reconciled: bool = False  # a reconciliation finished in this run
    first_missed_at: float = 0.0  # portal clock

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (0, 0.0, False) or k == "kind"}


@dataclass
class AuditResult:
    member_id: str
    kinds: list[KindResult] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(int(getattr(k, name)) for k in self.kinds)

    @property
    def incomplete(self) -> bool:
        return any(k.incomplete for k in self.kinds)

    def as_dict(self) -> dict[str, Any]:
        names = ("judged", "delivered", "by_event", "missed", "polled", "young", "deletes_missed")
        return {
            "member_id": self.member_id,
            **{n: self.total(n) for n in (*names, "deletes_polled", "requests")},
            "incomplete": self.incomplete,
            "kinds": [k.as_dict() for k in self.kinds],
        }


def _minus(stamp: str, seconds: float) -> str:
    """``stamp`` moved back by ``seconds``, in the portal's own format (its offset kept)."""
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return (moment - timedelta(seconds=seconds)).isoformat(timespec="seconds")


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).isoformat(timespec="seconds")


def start_of(feed: Feed, overlap_s: int, since: float) -> tuple[str, str]:
    """Where the next listing begins (filter operator, time in the portal's format).

    A change becomes visible at most ``overlap_s`` after its modification time (its transaction
    commits): so a listing re-reads ``overlap_s`` before the cursor — less once a complete listing ran
    that much after the cursor, and nothing at all (strictly after the cursor) once one ran
    ``overlap_s`` after it: a quiet portal's audit costs one request, however big the last burst was.
    """
    if not feed.cursor:
        return ">=", _utc(since - FIRST_MARGIN_S)
    try:
        cursor = datetime.fromisoformat(feed.cursor).timestamp()
    except ValueError:
        return ">=", _minus(feed.cursor, overlap_s)
    if feed.settled_at >= cursor + overlap_s + 1:
        return ">", feed.cursor
    lower = min(cursor, feed.settled_at - overlap_s) if feed.settled_at else cursor - overlap_s
    return ">=", _minus(feed.cursor, cursor - lower)


def advance(
    feed: Feed,
    handed: list[Change],
    clock: PortalClock,
    overlap_s: int,
    start_stamp: str,
    settled: float,
) -> Feed:
    """The cursor moves to the newest handed change; the boundary keeps what was judged in the overlap."""
    feed = replace(feed, settled_at=int(settled))
    if not handed:
        if feed.cursor:
            return feed
        return replace(feed, cursor=start_stamp)  # a first audit with nothing old: start there
    newest = max(handed, key=lambda c: c.at)
    floor = newest.at - overlap_s
    previous = [b for b in feed.boundary if _at(b, clock) is not None and (_at(b, clock) or 0) >= floor]
    fresh = [c.key for c in handed if c.at >= floor]
    boundary = list(dict.fromkeys([*previous, *fresh]))[-BOUNDARY_MAX:]
    cursor = newest.stamp if not feed.cursor or newest.at >= (clock.ts(feed.cursor) or 0) else feed.cursor
    return replace(feed, cursor=cursor, boundary=tuple(boundary))


def _at(key: str, clock: PortalClock) -> float | None:
    return clock.ts(key.split("@", 1)[1]) if "@" in key else None
