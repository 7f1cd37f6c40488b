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
            sqs.send_message(QueueUrl=queue_url, MessageBody=_fresh(msg["Body"]))
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=msg["ReceiptHandle"])
            report.moved += 1
    for handle in peeked:  # a dry run leaves the DLQ as it found it
        sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=handle, VisibilityTimeout=0)
    return report
