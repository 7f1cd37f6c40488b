"""SQS event source mappings: poll a queue and hand batches to a function like Lambda does.

Each poller long-polls its queue, gathers up to ``BatchSize`` messages for at most
``MaximumBatchingWindowInSeconds``, and invokes the function with a real SQS event. Afterwards
it deletes what succeeded: everything on success, everything except the ``batchItemFailures``
when the mapping reports item failures, nothing when the function raised. Messages that are not
deleted come back after the queue's visibility timeout, and moto moves them to the dead-letter
queue after ``maxReceiveCount`` receives, the same life cycle as in the cloud.
"""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .lambda_env import Functions, InvokeResult

__all__ = ["SqsEventSource", "SqsPoller", "batch_failures", "sqs_record"]

log = logging.getLogger("b24stack")

_POLL_SECONDS = 1  # short long-polls keep stop() quick; moto answers at once when messages arrive
_DELETES_IN_FLIGHT = 4


@dataclass
class SqsEventSource:
    """One function event of Type SQS, with the queue resolved to its local URL and ARN."""

    function_id: str
    event_name: str
    queue_url: str
    queue_arn: str
    batch_size: int = 10
    window_seconds: float = 0.0
    report_failures: bool = False
    enabled: bool = True
    #: Set while the source is paused (like disabling an event source mapping): messages stay queued.
    paused: threading.Event = field(default_factory=threading.Event)


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One ``Records`` entry of a Lambda SQS event, from a boto3 ``receive_message`` message."""
    attributes = {str(k): str(v) for k, v in (message.get("Attributes") or {}).items()}
    message_attributes: dict[str, Any] = {}
    for name, attr in (message.get("MessageAttributes") or {}).items():
        entry: dict[str, Any] = {}
        if "StringValue" in attr:
            entry["stringValue"] = attr["StringValue"]
        if "BinaryValue" in attr:
            entry["binaryValue"] = base64.b64encode(attr["BinaryValue"]).decode()
        entry["stringListValues"] = list(attr.get("StringListValues") or [])
        entry["binaryListValues"] = [base64.b64encode(v).decode() for v in attr.get("BinaryListValues") or []]
        entry["dataType"] = attr.get("DataType", "String")
        message_attributes[name] = entry
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update({"eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region})
    return record


def batch_failures(payload: Any, message_ids: set[str]) -> set[str] | None:
    """Message ids to keep per a ReportBatchItemFailures response; None means "the whole batch".

    Lambda's documented rules: a null/empty response or an empty/null list is complete success;
    a malformed entry or an id that is not in the batch fails the whole batch.
    """
    if payload is None or payload == {} or payload == "":
        return set()
    if not isinstance(payload, dict):
        return None
    failures = payload.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    failed: set[str] = set()
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or not ident or ident not in message_ids:
            return None
        failed.add(ident)
    return failed


class SqsPoller(threading.Thread):
    """A background thread serving one SQS event source."""

    def __init__(
        self,
        source: SqsEventSource,
        *,
        functions: Functions,
        client_factory: Callable[[], Any],
        region: str,
        stop_event: threading.Event,
    ) -> None:
        super().__init__(name=f"sqs-{source.function_id}-{source.event_name}", daemon=True)
        self.source = source
        self.functions = functions
        self.client = client_factory()
        self.region = region
        self.stop_event = stop_event

    def run(self) -> None:
        while not self.stop_event.is_set():
            if self.source.paused.is_set():
                self.stop_event.wait(0.1)
                continue
            try:
                messages = self._gather()
                if messages and self.source.paused.is_set():
                    self._release(messages)
                elif messages and not self.stop_event.is_set():
                    self._process(messages)
            except Exception as exc:
                if self.stop_event.is_set():
                    return
                log.warning("SQS poller %s: %s", self.name, exc)
                self.stop_event.wait(1.0)

    def _receive(self, count: int, wait: int) -> list[dict[str, Any]]:
        response = self.client.receive_message(
            QueueUrl=self.source.queue_url,
            MaxNumberOfMessages=max(1, min(10, count)),
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages") or [])

    def _gather(self) -> list[dict[str, Any]]:
        batch_size = max(1, self.source.batch_size)
        messages = self._receive(batch_size, _POLL_SECONDS)
        if not messages or self.source.window_seconds <= 0:
            return messages
        deadline = time.monotonic() + self.source.window_seconds
        while len(messages) < batch_size and not self.stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0.05:
                break
            wait = min(_POLL_SECONDS, max(0, math.floor(remaining)))
            more = self._receive(batch_size - len(messages), wait)
            messages += more
            if not more and wait == 0:
                self.stop_event.wait(min(remaining, 0.2))
        return messages

    def _delete_chunk(self, chunk: list[dict[str, Any]]) -> None:
        self.client.delete_message_batch(
            QueueUrl=self.source.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
        )

    def _release(self, messages: list[dict[str, Any]]) -> None:
        """Paused while gathering: make what was received visible again at once."""
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self.client.change_message_visibility_batch(
                QueueUrl=self.source.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(chunk)
                ],
            )

    def _process(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [sqs_record(m, self.source.queue_arn, self.region) for m in messages]}
        result: InvokeResult = self.functions.invoke(self.source.function_id, event)
        by_id = {m["MessageId"]: m for m in messages}
        if not result.ok:
            log.info(
                "%s: batch of %d failed; messages return after the visibility timeout",
                self.source.function_id,
                len(messages),
            )
            return
        keep: set[str] = set()
        if self.source.report_failures:
            failed = batch_failures(result.payload, set(by_id))
            if failed is None:
                log.warning(
                    "%s: invalid batchItemFailures response; whole batch retried", self.source.function_id
                )
                return
            keep = failed
        done = [m for mid, m in by_id.items() if mid not in keep]
        chunks = [done[start : start + 10] for start in range(0, len(done), 10)]
        if len(chunks) > 1:  # a full batch's 50 deletes, a few in flight, like the service's pollers
            with ThreadPoolExecutor(max_workers=_DELETES_IN_FLIGHT) as pool:
                list(pool.map(self._delete_chunk, chunks))
        elif chunks:
            self._delete_chunk(chunks[0])
        if keep:
            log.info(
                "%s: %d of %d messages reported as failed", self.source.function_id, len(keep), len(messages)
            )
