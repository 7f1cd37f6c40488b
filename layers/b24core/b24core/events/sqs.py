"""The SQS side of intake: send with bounded retries inside the request's time budget."""

from __future__ import annotations

import time
from typing import Any

from b24core.events.message import QueuedEvent


class EnqueueFailed(RuntimeError):
    """SQS did not take the message: the caller must not acknowledge the event."""


class SqsSink:
    def __init__(self, client: Any, queue_url: str, attempts: int = 3, backoff_s: float = 0.05) -> None:
        self.client = client
        self.queue_url = queue_url
        self.attempts = attempts
        self.backoff_s = backoff_s

    def send(self, message: QueuedEvent) -> None:
        last: Exception | None = None
        for attempt in range(self.attempts):
            try:
                self.client.send_message(
                    QueueUrl=self.queue_url,
                    MessageBody=message.to_json(),
                    MessageAttributes={
                        "event": {"DataType": "String", "StringValue": message.event or "-"},
                        "member_id": {"DataType": "String", "StringValue": message.member_id or "-"},
                    },
                )
                return
            except Exception as exc:  # botocore errors of every kind: retry, then refuse to ack
                last = exc
                time.sleep(self.backoff_s * (2**attempt))
        raise EnqueueFailed(f"SQS did not accept the event ({type(last).__name__})")
