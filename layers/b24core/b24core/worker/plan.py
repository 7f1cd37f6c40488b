"""A worker batch's plan (what the prefetch decided per record) and the marks a batch leaves behind.

The read marks (worker/read_marks.py) and the seen marks (worker/seen_marks.py) are the worker's
per-object bookkeeping: each is one BatchWriteItem per portal and batch, never a write per event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from logging import ERROR
from typing import Any

from b24core.aws.logs import log_event
from b24core.events.message import QueuedEvent, UnknownVersion
from b24core.portals.model import Portal
from b24core.worker.handlers import Event
from b24core.worker.outcomes import DEFERRED
from b24core.worker.read_marks import ObjectKey, ReadMarks, covered, event_time
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


Latest = dict[tuple[str, str, str], str]  # (member, fetch method, object id) -> messageId of its last event


def parse_batch(
    records: list[dict[str, Any]], fetch_method: Callable[[str], str | None]
) -> tuple[Plan, Latest, dict[str, list[str]]]:
    """The batch's events, coalesced per object: the plan, each object's latest event, and the
    messageIds per portal. A message this release cannot read is failed for the DLQ, never deleted."""
    plan = Plan()
    latest: Latest = {}
    by_portal: dict[str, list[str]] = {}
    for rec in records:
        mid = str(rec.get("messageId"))
        try:
            message = QueuedEvent.from_json(str(rec.get("body")))
        except (ValueError, KeyError, TypeError) as exc:
            # A newer release's message (a canary, a rollback) or an unreadable one fails here, comes
            # back for whichever worker can read it, and ends in the DLQ.
            plan.failed.add(mid)
            reason = "message_version" if isinstance(exc, UnknownVersion) else "malformed"
            plan.fail_reason[mid] = reason
            log_event(
                ERROR,
                "queue message this release cannot read; left for the DLQ",
                "dispatch",
                outcome="retry",
                reason=reason,
                version=str(exc.version) if isinstance(exc, UnknownVersion) else None,
            )
            continue
        ev = Event.from_message(message)
        plan.events[mid] = ev
        plan.messages[mid] = message
        by_portal.setdefault(ev.member_id, []).append(mid)
        method = fetch_method(ev.name)
        if method and ev.object_id is not None:
            key = (ev.member_id, method, ev.object_id)
            previous = latest.get(key)
            if previous is not None:
                plan.skip[previous] = "coalesced"
            latest[key] = mid
    return plan, latest, by_portal


def skip_covered(marks: ReadMarks | None, plan: Plan, member_id: str, reads: dict[str, ObjectKey]) -> None:
    """Drop reads (messageId -> object) that an earlier batch's read already covered (see read_marks)."""
    if marks is None or not reads:
        return
    last = marks.last_reads(member_id, set(reads.values()))
    for mid, key in list(reads.items()):
        if covered(plan.events[mid].ts, last.get(key)):
            plan.skip[mid] = "read_since"
            del reads[mid]


def mark_reads(marks: ReadMarks | None, plan: Plan, failures: list[Any]) -> dict[str, set[ObjectKey]]:
    """Read marks only for reads whose events were handled here: an event sent back (deferred,
    held, failed) must be read again when it returns, or the mark would make it skip itself.
    Returns the objects marked, per portal (a mark also ends the read's claim: read_claims.py)."""
    marked: dict[str, set[ObjectKey]] = {}
    if marks is None:
        return marked
    failed = {f["itemIdentifier"] for f in failures} | plan.failed
    for member_id, reads in plan.reads.items():
        done = {
            key: at
            for mid, (key, at) in reads.items()
            if mid not in failed and plan.skip.get(mid) not in DEFERRED
        }
        if done and marks.mark(member_id, done):
            marked[member_id] = set(done)
    return marked


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
