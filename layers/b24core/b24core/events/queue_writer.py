"""Queued events into SQS in batches of ten, saying which SQS took: the pullers (offline queue,
change polling) hand over only what is safely queued before they clear anything at the source."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from b24core.events.message import QueuedEvent

SQS_BATCH = 10


@dataclass(eq=False)  # a service, compared by identity
class QueueWriter:
    """SendMessageBatch with bounded retries of the entries SQS refused; returns the accepted keys."""

    sqs: Any
    queue_url: str
    attempts: int = 4
    backoff_s: float = 0.05
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self.last_error = ""

    def send(self, messages: dict[str, QueuedEvent]) -> set[str]:
        accepted: set[str] = set()
        waiting = dict(messages)
        for attempt in range(self.attempts):
            if not waiting:
                break
            if attempt:
                self.sleep(self.backoff_s * (2 ** (attempt - 1)))
            keys = list(waiting)
            for start in range(0, len(keys), SQS_BATCH):
                chunk = keys[start : start + SQS_BATCH]
                entries = [
                    {
                        "Id": str(i),
                        "MessageBody": waiting[key].to_json(),
                        "MessageAttributes": {
                            "event": {"DataType": "String", "StringValue": waiting[key].event or "-"},
                            "member_id": {"DataType": "String", "StringValue": waiting[key].member_id},
                            "source": {"DataType": "String", "StringValue": "offline"},
                        },
                    }
                    for i, key in enumerate(chunk)
                ]
                try:
                    answer = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
                except Exception as exc:  # the whole call failed: every entry of it is retried
                    self.last_error = type(exc).__name__
                    continue
                for ok in answer.get("Successful") or []:
                    key = chunk[int(ok["Id"])]
                    accepted.add(key)
                    waiting.pop(key, None)
        return accepted
