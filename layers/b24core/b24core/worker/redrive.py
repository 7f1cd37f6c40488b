"""Return dead-lettered events to the events queue (after the cause was fixed)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RedriveReport:
    moved: int = 0
    seen: int = 0
    events: list[dict[str, str]] = field(default_factory=list)


def _summary(body: str) -> dict[str, str]:
    try:
        raw = json.loads(body)
        fields = (raw.get("data") or {}).get("FIELDS") or {}
        return {
            "event": str(raw.get("event")),
            "member_id": str(raw.get("member_id")),
            "object_id": str(fields.get("ID", "")),
        }
    except (ValueError, AttributeError):
        return {"event": "unreadable", "member_id": "", "object_id": ""}


def redrive(
    sqs: Any, dlq_url: str, queue_url: str, dry_run: bool = False, limit: int = 10_000
) -> RedriveReport:
    """Move up to ``limit`` messages from the DLQ to the queue: send first, delete after (never lost).

    A dry run only looks: messages it received become visible again after a short timeout.
    """
    report = RedriveReport()
    peeked: list[str] = []
    while report.seen < limit:
        batch = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=30 if dry_run else 60,
        ).get("Messages", [])
        if not batch:
            break
        for msg in batch:
            report.seen += 1
            report.events.append(_summary(msg["Body"]))
            if dry_run:
                peeked.append(msg["ReceiptHandle"])
                continue
            sqs.send_message(QueueUrl=queue_url, MessageBody=msg["Body"])
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=msg["ReceiptHandle"])
            report.moved += 1
    for handle in peeked:  # a dry run leaves the DLQ as it found it
        sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=handle, VisibilityTimeout=0)
    return report


@dataclass
class DlqCount:
    """One portal's events in the DLQ, from a bounded look (``capped``: more were there than looked at)."""

    portal: int = 0
    scanned: int = 0
    capped: bool = False
    events: dict[str, int] = field(default_factory=dict)  # event name -> count, of this portal's


def count_for_portal(sqs: Any, dlq_url: str, member_id: str, limit: int = 1000) -> DlqCount:
    """Count a portal's dead-lettered events by looking at up to ``limit`` messages of the DLQ.

    The messages carry no tokens (events/message.py), only the portal's member_id in the body. Each one
    looked at is made visible again at once, as ``redrive --dry-run`` does: the DLQ is left as found.
    """
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
                summary = _summary(msg["Body"])
                if summary["member_id"] == member_id:
                    out.portal += 1
                    out.events[summary["event"]] = out.events.get(summary["event"], 0) + 1
        if out.scanned >= limit:
            waiting = sqs.get_queue_attributes(
                QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
            ).get("Attributes", {})
            out.capped = int(waiting.get("ApproximateNumberOfMessages") or 0) > 0
    finally:
        for handle in peeked:
            sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=handle, VisibilityTimeout=0)
    return out
