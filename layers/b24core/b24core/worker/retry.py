"""Retries of a failing portal's events: hours of growing delays before the dead-letter queue.

A record that fails is seen again after the queue's visibility backoff, and after ``maxReceiveCount``
receives (minutes) the DLQ takes it. That is right for a poison event (one object whose read or handler
always fails) but wrong when the portal itself is failing - a box down for maintenance, 5xx from its
proxy, timeouts, the authorization server unreachable: every blip would flood the DLQ. Events that
failed that way are sent back as new messages instead, each with a longer delay (SQS allows at most
15 minutes per message, so the delays chain: the message carries its attempt count and since when it
fails), until ``window_s`` has passed; then they take the ordinary path to the DLQ.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from logging import WARNING
from typing import Any

from b24core.aws.logs import log_event
from b24core.bitrix.errors import B24Error
from b24core.events.message import QueuedEvent

MAX_DELAY_S = 900  # SQS DelaySeconds ceiling
REQUEUE_BATCH = 10  # SendMessageBatch entries per request


def portal_failing(exc: BaseException) -> bool:
    """The portal (or the auth server on its behalf) failed as a whole, not this one event: down,
    5xx, timeouts, garbage answers, a refresh that cannot be done now, REST blocked by hand."""
    return isinstance(exc, B24Error) and bool(exc.retryable)


@dataclass(frozen=True)
class RetryPolicy:
    #: How long a failing portal's events keep coming back; 0 turns delayed retries off.
    window_s: float = 0.0
    #: The first delay; it doubles per attempt up to MAX_DELAY_S.
    base_s: float = 10.0
    #: A bound on hops whatever the delays (a zero base must not spin for hours).
    max_hops: int = 500

    def delay(self, attempt: int) -> int:
        return int(min(MAX_DELAY_S, max(1.0, self.base_s) * 2 ** min(attempt, 20)))

    def next_hop(self, message: QueuedEvent, now: int) -> tuple[QueuedEvent, int] | None:
        """The message to send back and its delay, or None: the window is spent (the DLQ path)."""
        if self.window_s <= 0:
            return None
        since = message.failing_since or now
        if now - since >= self.window_s or message.attempt >= self.max_hops:
            return None
        return replace(message, attempt=message.attempt + 1, failing_since=since), self.delay(message.attempt)


def send_later(
    requeue: Callable[[list[str], int], set[int] | None],
    policy: RetryPolicy,
    messages: dict[str, QueuedEvent],
    now: int | None = None,
) -> set[str] | None:
    """Send each message back with its next delay; returns the ids SQS took, or None when any of them
    is out of its window (then none is sent: the caller fails them all, towards the DLQ)."""
    at = int(time.time()) if now is None else now
    hops = {mid: policy.next_hop(message, at) for mid, message in messages.items()}
    planned = {mid: hop for mid, hop in hops.items() if hop is not None}
    if len(planned) < len(hops):
        return None
    by_delay: dict[int, list[str]] = {}
    for mid, (_, delay) in planned.items():
        by_delay.setdefault(delay, []).append(mid)
    sent: set[str] = set()
    for delay, mids in by_delay.items():
        for start in range(0, len(mids), REQUEUE_BATCH):
            chunk = mids[start : start + REQUEUE_BATCH]
            try:
                lost = requeue([planned[mid][0].to_json() for mid in chunk], delay) or set()
            except Exception:  # not sent: the original comes back by the queue's own backoff
                log_event(WARNING, "could not send failing events back", "dispatch", outcome="retry")
                lost = set(range(len(chunk)))
            sent.update(mid for i, mid in enumerate(chunk) if i not in lost)
    return sent


def visibility_backoff(
    backoff: Callable[[str, int], None] | None,
    records: list[dict[str, Any]],
    failures: list[Any],
    base_s: float,
) -> None:
    """Failed records come back later and later (not hot); after maxReceiveCount the DLQ takes them."""
    if backoff is None or not failures:
        return
    failed = {f["itemIdentifier"] for f in failures}
    for rec in records:
        if rec.get("messageId") not in failed:
            continue
        count = int((rec.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
        seconds = int(min(MAX_DELAY_S, base_s * 2 ** max(0, count - 1)))
        try:
            backoff(str(rec.get("receiptHandle")), max(0, seconds))
        except Exception:  # the queue's own visibility timeout still brings it back
            log_event(WARNING, "could not delay a failed event", "dispatch", outcome="retry")
