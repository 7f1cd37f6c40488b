"""A worker batch's plan (what the prefetch decided per record) and the marks a batch leaves behind.

The read marks (worker/read_marks.py) and the seen marks (worker/seen_marks.py) are the worker's
per-object bookkeeping: each is one BatchWriteItem per portal and batch, never a write per event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from b24core.events.message import QueuedEvent
from b24core.portals.model import Portal
from b24core.worker.handlers import Event
from b24core.worker.outcomes import DEFERRED
from b24core.worker.read_marks import ObjectKey, ReadMarks, event_time
from b24core.worker.seen_marks import Seen, SeenKey, SeenMarks


@dataclass
class Plan:
    """What the prefetch decided for each record of the batch (by SQS messageId)."""

    events: dict[str, Event] = field(default_factory=dict)
    messages: dict[str, QueuedEvent] = field(default_factory=dict)
    skip: dict[str, str] = field(default_factory=dict)  # messageId -> reason (coalesced, deferred, dropped)
    failed: set[str] = field(default_factory=set)
    #: messageId -> why the prefetch failed it for the DLQ (message_version, malformed, newer_release)
    fail_reason: dict[str, str] = field(default_factory=dict)
    portals: dict[str, Portal] = field(default_factory=dict)
    #: Reads done in this batch, per portal: (object, read time) by the messageId whose read it was.
    reads: dict[str, dict[str, tuple[ObjectKey, float]]] = field(default_factory=dict)


def mark_reads(marks: ReadMarks | None, plan: Plan, failures: list[Any]) -> None:
    """Read marks only for reads whose events were handled here: an event sent back (deferred,
    held, failed) must be read again when it returns, or the mark would make it skip itself."""
    if marks is None:
        return
    failed = {f["itemIdentifier"] for f in failures} | plan.failed
    for member_id, reads in plan.reads.items():
        done = {
            key: at
            for mid, (key, at) in reads.items()
            if mid not in failed and plan.skip.get(mid) not in DEFERRED
        }
        if done:
            marks.mark(member_id, done)


def mark_seen(seen: SeenMarks | None, kind_of: Callable[[str], str | None], events: list[Event]) -> None:
    """Every event of a listable kind arrived: one write per portal for the whole batch."""
    if seen is None:
        return
    marks: dict[str, dict[SeenKey, Seen]] = {}
    for ev in events:
        kind, object_id, at = kind_of(ev.name), ev.object_id, event_time(ev.ts)
        if kind is None or object_id is None or not object_id.isdigit() or at is None:
            continue
        key = (kind, int(object_id))
        mark = Seen.of(at, ev.source, ev.name.endswith("DELETE"))
        portal = marks.setdefault(ev.member_id, {})
        portal[key] = portal[key].merged(mark) if key in portal else mark
    for member_id, portal_marks in marks.items():
        seen.mark(member_id, portal_marks)
