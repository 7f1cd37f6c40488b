"""Schedule / ScheduleV2 events: fire functions on their rate() or cron() expressions.

AWS cron has six fields (minutes hours day-of-month month day-of-week year), ``?`` for "no
specific value" and day-of-week numbered 1=SUN..7=SAT; croniter takes five fields with 0=SUN.
The translation lives here, with the year field checked separately. Scheduled runs are
asynchronous invocations; a runner option turns timed firing off (tests fire by hand instead).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from .lambda_env import Functions

__all__ = ["Schedule", "ScheduleRunner", "aws_cron_to_croniter", "parse_expression"]

log = logging.getLogger("b24stack")

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$", re.IGNORECASE)
_CRON = re.compile(r"^cron\((.+)\)$", re.IGNORECASE)
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$", re.IGNORECASE)
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def _dow_item(item: str) -> str:
    """Shift one AWS day-of-week item (1=SUN) to croniter's numbering (0=SUN)."""

    def shift(match: re.Match[str]) -> str:
        return str((int(match.group(0)) - 1) % 7)

    def shifted(text: str) -> str:
        return re.sub(r"\d+", shift, text)

    if "#" in item:
        day, nth = item.split("#", 1)
        return shifted(day) + "#" + nth
    if "/" in item:
        start, step = item.split("/", 1)
        return shifted(start) + "/" + step
    return shifted(item)


def aws_cron_to_croniter(expression: str) -> tuple[str, str]:
    """(five-field croniter expression, AWS year field) for the inside of ``cron(...)``."""
    fields = expression.split()
    if len(fields) != 6:
        raise ValueError(f"AWS cron needs 6 fields, got {len(fields)}: {expression!r}")
    minute, hour, dom, month, dow, year = fields
    dom = "*" if dom == "?" else dom
    dow = "*" if dow == "?" else ",".join(_dow_item(i) for i in dow.split(","))
    return " ".join([minute, hour, dom, month, dow]), year


def _year_matches(field: str, year: int) -> bool:
    if field in ("*", "?"):
        return True
    for item in field.split(","):
        base, _, step = item.partition("/")
        lo, _, hi = base.partition("-")
        low = int(lo) if lo not in ("*", "") else 1970
        high = int(hi) if hi else (9999 if step or lo == "*" else low)
        if low <= year <= high and (not step or (year - low) % int(step) == 0):
            return True
    return False


def parse_expression(expression: str) -> tuple[str, Any]:
    """('rate', seconds) / ('cron', (croniter expr, year field)) / ('at', datetime)."""
    text = expression.strip()
    if m := _RATE.match(text):
        return "rate", int(m.group(1)) * _UNIT_SECONDS[m.group(2).lower().rstrip("s")]
    if m := _CRON.match(text):
        return "cron", aws_cron_to_croniter(m.group(1))
    if m := _AT.match(text):
        return "at", datetime.fromisoformat(m.group(1))
    raise ValueError(f"unsupported schedule expression {expression!r}")


@dataclass
class Schedule:
    """One Schedule/ScheduleV2 event of a function."""

    function_id: str
    event_name: str
    expression: str
    input: Any = None
    enabled: bool = True
    timezone: str = "UTC"
    kind: str = "ScheduleV2"
    arn: str = ""

    def next_after(self, now: datetime) -> datetime | None:
        """The first firing time after ``now`` (aware UTC), or None if it never fires again."""
        kind, spec = parse_expression(self.expression)
        if kind == "rate":
            return now + timedelta(seconds=spec)
        zone = ZoneInfo(self.timezone or "UTC")
        if kind == "at":
            when: datetime = spec.replace(tzinfo=zone).astimezone(UTC)
            return when if when > now else None
        expr, year_field = spec
        it = croniter(expr, now.astimezone(zone))
        for _ in range(10000):
            candidate: datetime = it.get_next(datetime)
            if _year_matches(year_field, candidate.year):
                return candidate.astimezone(UTC)
        return None

    def event(self, region: str, account_id: str) -> Any:
        """The event the function receives: the Input JSON if set, else a scheduled-event object."""
        if self.input is not None:
            if isinstance(self.input, str):
                try:
                    return json.loads(self.input)
                except ValueError:
                    return self.input
            return self.input
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.scheduler" if self.kind == "ScheduleV2" else "aws.events",
            "account": account_id,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": [self.arn] if self.arn else [],
            "detail": {},
        }


class ScheduleRunner(threading.Thread):
    """Fires every enabled schedule when due (asynchronously, like EventBridge does)."""

    def __init__(
        self,
        schedules: list[Schedule],
        *,
        functions: Functions,
        region: str,
        account_id: str,
        stop_event: threading.Event,
    ) -> None:
        super().__init__(name="b24stack-schedules", daemon=True)
        self.schedules = [s for s in schedules if s.enabled]
        self.functions = functions
        self.region = region
        self.account_id = account_id
        self.stop_event = stop_event

    def run(self) -> None:
        now = datetime.now(UTC)
        due: dict[int, datetime | None] = {}
        for i, s in enumerate(self.schedules):
            try:
                due[i] = s.next_after(now)
            except (ValueError, KeyError) as exc:
                log.warning("schedule %s.%s ignored: %s", s.function_id, s.event_name, exc)
                due[i] = None
        while not self.stop_event.is_set():
            pending = [t for t in due.values() if t is not None]
            if not pending:
                return
            wait = (min(pending) - datetime.now(UTC)).total_seconds()
            if wait > 0 and self.stop_event.wait(min(wait, 60.0)):
                return
            now = datetime.now(UTC)
            for i, when in list(due.items()):
                if when is not None and when <= now:
                    s = self.schedules[i]
                    log.info("schedule %s.%s fired", s.function_id, s.event_name)
                    self.functions.invoke_async(s.function_id, s.event(self.region, self.account_id))
                    due[i] = s.next_after(now)
