"""The portal's own clock, read from an answer's ``time`` block: a box may run minutes off ours and in
another zone, and its modification times are in its own format and offset."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from b24core.bitrix.rest import RestAnswer
from b24core.bitrix.values import as_epoch


# ---------------------------------------------------------------- the portal's clock
@dataclass(frozen=True)
class PortalClock:
    """What one answer's ``time`` block says about the portal's clock, measured against ours."""

    now: float  # the portal's time (unix seconds) when it started the request
    skew: float  # portal minus ours
    zone: tzinfo

    @classmethod
    def from_answer(cls, answer: RestAnswer, ours: float) -> PortalClock:
        info = answer.time or {}
        stamp = str(info.get("date_start") or "")
        zone: tzinfo = UTC
        parsed = _parse(stamp, UTC)
        if parsed is not None and parsed.tzinfo is not None:
            zone = parsed.tzinfo
        start = as_epoch(info.get("start"))
        if start is not None:
            now = start
        elif parsed is not None:
            now = parsed.timestamp()
        else:
            now = ours
        return cls(now=now, skew=now - ours, zone=zone)

    def format(self, portal_ts: float) -> str:
        """A filter value in the portal's own format and offset."""
        return datetime.fromtimestamp(int(portal_ts), self.zone).isoformat(timespec="seconds")

    def ts(self, stamp: str) -> float | None:
        parsed = _parse(stamp, self.zone)
        return parsed.timestamp() if parsed is not None else None


def _parse(stamp: str, zone: tzinfo) -> datetime | None:
    try:
        moment = datetime.fromisoformat(stamp)
    except (ValueError, OverflowError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
