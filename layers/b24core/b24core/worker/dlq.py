"""The events DLQ at fleet size: look at it, return one portal's events, drop what is beyond saving.

SQS has no "receive where member_id = X": every operation here sweeps the queue, holding each message
it received invisible until the sweep ends (so it is received once), acts on the ones that match and
then makes the others visible again at once — they stay in the DLQ exactly as they were.

What a message shows is picked field by field (``summary``), never the body as a whole: queued events
carry no auth block (b24core.events.message), but a DLQ may also hold a raw form someone sent by hand,
and an operator's screen must not show its tokens either way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: How long a sweep holds the messages it has seen (longer than any sweep of a DLQ takes).
HOLD_S = 300
_ATTRS = ["ApproximateReceiveCount", "SentTimestamp", "ApproximateFirstReceiveTimestamp"]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _body(msg: dict[str, Any]) -> dict[str, Any]:
    try:
        raw = json.loads(msg.get("Body") or "")
    except ValueError:
        return {}
    return raw if isinstance(raw, dict) else {}


def _attr(msg: dict[str, Any], name: str) -> str:
    value = (msg.get("MessageAttributes") or {}).get(name) or {}
    return str(value.get("StringValue") or "")


def member_of(msg: dict[str, Any]) -> str:
    """The portal a message belongs to: its ``member_id`` attribute, else the body's (or a raw form's
    auth block, whose other fields are never read)."""
    mid = _attr(msg, "member_id")
    if mid and mid != "-":
        return mid
    raw = _body(msg)
    auth = _dict(raw.get("auth"))
    return str(raw.get("member_id") or auth.get("member_id") or "")


def summary(msg: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """What an operator may see of a dead-lettered event (no auth block, no token, no payload)."""
    raw = _body(msg)
    auth = _dict(raw.get("auth"))
    fields = _dict(_dict(raw.get("data")).get("FIELDS"))
    attrs = msg.get("Attributes") or {}
    sent_ms = int(attrs.get("SentTimestamp") or 0)
    first_ms = int(attrs.get("ApproximateFirstReceiveTimestamp") or 0)
    now = time.time() if now is None else now
    return {
        "message_id": str(msg.get("MessageId") or ""),
        "member_id": member_of(msg),
        "domain": str(raw.get("domain") or auth.get("domain") or ""),
        "event": str(raw.get("event") or _attr(msg, "event") or "unreadable").upper(),
        "object_id": str(fields.get("ID") or ""),
        "source": str(raw.get("source") or _attr(msg, "source") or ""),
        # Receives so far: the worker's failed attempts, plus any inspections of the DLQ itself.
        "attempts": int(attrs.get("ApproximateReceiveCount") or 0),
        "first_failure_at": first_ms // 1000,
        "reason": _attr(msg, "error") or "-",
        "age_s": max(0, int(now - sent_ms / 1000)) if sent_ms else 0,
    }


@dataclass
class SweepReport:
    seen: int = 0  # messages the sweep received
    matched: int = 0  # of those, the ones it acted on (or would have)
    moved: int = 0  # returned to the events queue
    deleted: int = 0  # purged
    events: list[dict[str, Any]] = field(default_factory=list)


def sweep(
    sqs: Any,
    dlq_url: str,
    member_id: str | None,
    act: Callable[[dict[str, Any]], bool],
    limit: int = 10_000,
    keep_matched: bool = False,
) -> SweepReport:
    """Receive every visible message once; ``act`` on those of ``member_id`` (all when None) up to
    ``limit``; make the rest — and with ``keep_matched`` the matched too — visible again at the end.
    ``act`` returns True when it deleted the message from the DLQ."""
    report = SweepReport()
    held: dict[str, str] = {}  # MessageId -> receipt handle, released at the end
    seen: set[str] = set()
    try:
        while report.matched < limit:
            batch = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                VisibilityTimeout=HOLD_S,
                AttributeNames=_ATTRS,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                for m in batch:  # a repeat (standard queues may deliver twice): keep its newest handle
                    held[m["MessageId"]] = m["ReceiptHandle"]
                break
            for msg in fresh:
                seen.add(msg["MessageId"])
                report.seen += 1
                wanted = report.matched < limit and (member_id is None or member_of(msg) == member_id)
                if wanted:
                    report.matched += 1
                    report.events.append(summary(msg))
                    if not keep_matched and act(msg):
                        continue
                held[msg["MessageId"]] = msg["ReceiptHandle"]
    finally:
        for handle in held.values():  # what the sweep did not take goes back as it was
            try:
                sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=handle, VisibilityTimeout=0)
            except Exception:  # noqa: S112 - an expired handle is visible again anyway
                continue
    return report


def inspect(sqs: Any, dlq_url: str, member_id: str | None = None, limit: int = 50) -> SweepReport:
    """Look only: every message is visible again afterwards."""
    return sweep(sqs, dlq_url, member_id, lambda _msg: False, limit, keep_matched=True)


def _fresh(body: str) -> str:
    """A redriven event gets a fresh retry window (worker/retry.py): its cause was fixed, so its
    earlier failures no longer count. Anything else is returned as it was."""
    try:
        raw = json.loads(body)
    except ValueError:
        return body
    if not isinstance(raw, dict) or not ({"attempt", "failing_since"} & raw.keys()):
        return body
    kept = {k: v for k, v in raw.items() if k not in ("attempt", "failing_since")}
    return json.dumps(kept, separators=(",", ":"), ensure_ascii=False)


def redrive(
    sqs: Any, dlq_url: str, queue_url: str, member_id: str | None = None, limit: int = 10_000
) -> SweepReport:
    """Return the matching messages to the events queue (send first, delete after: never lost), with
    their message attributes; the others stay in the DLQ."""
    report = SweepReport()

    def move(msg: dict[str, Any]) -> bool:
        extra = {"MessageAttributes": msg["MessageAttributes"]} if msg.get("MessageAttributes") else {}
        sqs.send_message(QueueUrl=queue_url, MessageBody=_fresh(msg["Body"]), **extra)
        sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=msg["ReceiptHandle"])
        report.moved += 1
        return True

    swept = sweep(sqs, dlq_url, member_id, move, limit)
    swept.moved = report.moved
    return swept


def purge(sqs: Any, dlq_url: str, member_id: str | None = None, limit: int = 100_000) -> SweepReport:
    """Delete the matching messages for good; the others stay."""
    deleted = 0

    def drop(msg: dict[str, Any]) -> bool:
        nonlocal deleted
        sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=msg["ReceiptHandle"])
        deleted += 1
        return True

    report = sweep(sqs, dlq_url, member_id, drop, limit)
    report.deleted = deleted
    return report


@dataclass
class DlqCount:
    """One portal's events in the DLQ, from a bounded look (``capped``: more were there than looked at)."""

    portal: int = 0
    scanned: int = 0
    capped: bool = False
    events: dict[str, int] = field(default_factory=dict)  # event name -> count, of this portal's


def count_for_portal(sqs: Any, dlq_url: str, member_id: str, limit: int = 1000) -> DlqCount:
    """Count a portal's dead-lettered events by looking at up to ``limit`` messages (``portals show``
    must stay fast on a big DLQ, so unlike ``sweep`` the bound is on messages looked at); each is made
    visible again at once: the DLQ is left as found."""
    out = DlqCount()
    peeked: list[str] = []
    seen: set[str] = set()
    try:
        while out.scanned < limit:
            batch = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=min(10, limit - out.scanned),
                WaitTimeSeconds=1,  # long polling asks every SQS host: a short poll may miss a few
                VisibilityTimeout=120,
            ).get("Messages", [])
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            for msg in fresh:
                seen.add(msg["MessageId"])
                out.scanned += 1
                peeked.append(msg["ReceiptHandle"])
                if member_of(msg) == member_id:
                    event = summary(msg)["event"]
                    out.portal += 1
                    out.events[event] = out.events.get(event, 0) + 1
        if out.scanned >= limit:
            waiting = sqs.get_queue_attributes(
                QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
            ).get("Attributes", {})
            out.capped = int(waiting.get("ApproximateNumberOfMessages") or 0) > 0
    finally:
        for handle in peeked:
            sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=handle, VisibilityTimeout=0)
    return out
