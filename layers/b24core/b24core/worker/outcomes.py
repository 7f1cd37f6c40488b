"""What became of each event of a worker batch, counted once per batch: the worker's metrics.

A partial batch response hides per-event outcomes from Lambda's own metrics (a failed event is not a
function error), so the worker reports them itself, as EMF metrics named as nouns in past tense:

- ``EventsReceived``: records in the batch (the denominator of the failure-rate alarm);
- ``EventsHandled``: dispatched to the app's handlers, which returned;
- ``EventsSkipped{reason}``: done without a handler call by design (``coalesced`` with a later event
  of the same object, ``read_since`` an earlier read, ``object_gone``, ``no_handler``);
- ``EventsDeferred{reason}``: sent back delayed (``budget`` spent, ``held`` to pack reads,
  ``portal_slow`` over its share of the invocation, ``claimed``: another worker is reading its object
  right now); they come back as new messages;
- ``EventsDropped{reason}``: given up on purpose (``portal_not_active``, ``portal_unavailable``);
- ``EventsFailed{reason}`` and ``EventsFailed`` (no reason, for the alarm's rate): left to SQS to
  retry (``not_prepared``: its portal's reads failed; ``handler_error``; ``in_progress``: another
  worker holds its guard claim, ``guard_unavailable``: the claim failed (worker/guard_ledger.py);
  ``message_version``, ``malformed`` and ``newer_release``: a message or portal this release cannot
  read); after ``maxReceiveCount`` receives the DLQ takes it;
- ``EventsDeadLettered``: failed on their last receive (``MAX_RECEIVES``): the DLQ takes them, and
  each is logged at ERROR with its portal and event (the saved query "dead-lettered events").

One metric line per (name, reason) per batch, not per event: cheap at a storm's volume.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from logging import ERROR, WARNING
from typing import Any

from b24core.aws import metrics
from b24core.aws.logs import log_event

DEFERRED = frozenset({"deferred", "held", "portal_slow", "retrying", "claimed"})
DROPPED = frozenset({"portal_not_active", "portal_unavailable"})
#: EventsQueue's RedrivePolicy maxReceiveCount in template.yaml (a unit test holds the two together).
MAX_RECEIVES = 5
_DEFER_REASON = {"deferred": "budget", "held": "held", "portal_slow": "portal_slow", "claimed": "claimed"}


@dataclass
class BatchOutcome:
    """Counts per (metric, reason) and, per portal, the newest intake time of an event it finished."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    received: int = 0
    #: member_id -> newest ``received_at`` of the portal's events that are done (handled/skipped/dropped)
    processed: dict[str, int] = field(default_factory=dict)

    def total(self, name: str) -> int:
        return sum(n for (metric, _reason), n in self.counts.items() if metric == name)


def judge(
    records: Iterable[tuple[str, str | None, int]],
    skip: dict[str, str],
    failed: set[str],
    prepared_failed: set[str],
    has_handlers: Callable[[str], bool],
    event_names: dict[str, str],
    fail_reasons: dict[str, str] | None = None,
) -> BatchOutcome:
    """``records``: (messageId, member_id or None when unreadable, received_at) of each record;
    ``fail_reasons``: failures the prefetch already named (``message_version``, ``malformed``,
    ``newer_release``: left for the DLQ, never deleted)."""
    out = BatchOutcome()
    for mid, member_id, received_at in records:
        out.received += 1
        if mid in failed:
            named = (fail_reasons or {}).get(mid)
            out.counts[
                "EventsFailed", named or ("not_prepared" if mid in prepared_failed else "handler_error")
            ] += 1
            continue
        reason = skip.get(mid, "")
        if reason == "retrying":  # counted as EventsRetried{reason} when sent back (worker/retry.py)
            continue
        if reason in DEFERRED:
            out.counts["EventsDeferred", _DEFER_REASON[reason]] += 1
            continue
        if reason in DROPPED:
            out.counts["EventsDropped", reason] += 1
        elif reason:
            out.counts["EventsSkipped", reason] += 1
        elif not has_handlers(event_names.get(mid, "")):
            out.counts["EventsSkipped", "no_handler"] += 1
        else:
            out.counts["EventsHandled", ""] += 1
        if member_id:
            out.processed[member_id] = max(out.processed.get(member_id, 0), received_at)
    return out


def emit(outcome: BatchOutcome) -> None:
    """One EMF line per (metric, reason); failures also without a reason (the alarm's numerator)."""
    if outcome.received:
        metrics.emit("EventsReceived", outcome.received)
    for (name, reason), count in sorted(outcome.counts.items()):
        if reason:
            metrics.emit(name, count, reason=reason)
        else:
            metrics.emit(name, count)
    failed = outcome.total("EventsFailed")
    if failed:
        metrics.emit("EventsFailed", failed)


def report(plan: Any, records: list[dict[str, Any]], failures: list[Any], registry: Any, health: Any) -> None:
    """The worker's batch (its Plan, the records, the partial-batch failures) as metrics, and each
    portal's last received/processed times (``health``: worker/health.py, or None)."""
    rows = []
    for record in records:
        mid = str(record.get("messageId"))
        message = plan.messages.get(mid)
        rows.append((mid, message.member_id if message else None, message.received_at if message else 0))
    outcome = judge(
        rows,
        plan.skip,
        {f["itemIdentifier"] for f in failures},
        plan.failed,
        lambda name: bool(registry.handlers_for(name)),
        {mid: ev.name for mid, ev in plan.events.items()},
        plan.fail_reason,
    )
    emit(outcome)
    _dead_lettered(plan, records, {f["itemIdentifier"] for f in failures})
    if health is not None and outcome.processed:
        health.record(outcome.processed)


def _dead_lettered(plan: Any, records: list[dict[str, Any]], failed: set[str]) -> None:
    """Failed on the last receive: say so now, the DLQ will not (one line per such event; rare)."""
    count = 0
    for record in records:
        mid = str(record.get("messageId"))
        receives = int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
        if mid not in failed or receives < MAX_RECEIVES:
            continue
        count += 1
        message = plan.messages.get(mid)
        log_event(
            ERROR,
            "event failed its last receive; the DLQ takes it",
            "dispatch",
            message.member_id if message else None,
            "dead_lettered",
            event=message.event if message else "unreadable",
            receive_count=receives,
        )
    if count:
        metrics.emit("EventsDeadLettered", count)


def log_failed(member_id: str, event: str, exc: Exception) -> None:
    log_event(
        WARNING,
        "handler failed; the event will be retried",
        "dispatch",
        member_id,
        "failed",
        error=exc,
        event=event,
    )
