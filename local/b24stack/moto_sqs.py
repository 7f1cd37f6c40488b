"""moto's SQS model, made linear where it is quadratic in the queued messages (local stack only).

The local stack's moto server plays SQS for thousands of queued events (the event storm). Three of
its costs grow with every message queued, per message handed out or deleted, so at 5,000 queued a
storm measured moto instead of the worker:

* its clock read builds two datetimes per call and is made several times per queued message;
  ``time.time()`` is the same value (seconds since the epoch);
* ``ReceiveMessage`` checks each message it hands out against the retention period by computing all
  the queue's attributes, three of them counts over every queued message (100 ms per receive of 10
  at 5,000 queued); the retention period is read directly instead;
* ``DeleteMessageBatch`` scans the queue twice and rebuilds it per receipt handle; here once per batch.

Behaviour is unchanged: the same messages are handed out, deleted and reported invalid as before.
"""

from __future__ import annotations

import threading
import time
from typing import Any

#: Batch deletes may arrive at once (the pollers delete a batch a few requests at a time): the queue's
#: message list is rebuilt by one of them at a time, so no delete is lost to another's rebuild.
_DELETING = threading.Lock()


def install() -> None:
    import moto.core.utils as utils
    import moto.sqs.models as models

    slow = utils.unix_time
    utils.unix_time = lambda dt=None: time.time() if dt is None else slow(dt)
    models.unix_time = utils.unix_time  # type: ignore[attr-defined]

    def within_retention(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > time.time())

    def delete_message_batch(
        self: Any, queue_name: str, receipts: list[dict[str, Any]]
    ) -> tuple[list[str], list[dict[str, str]]]:
        queue = self.get_queue(queue_name)
        with _DELETING:
            wanted = {r["ReceiptHandle"] for r in receipts} - queue.deleted_messages
            owners = {}
            if wanted:
                for message in queue._messages:
                    for handle in message.all_receipt_handles:
                        if handle in wanted:
                            owners[id(message)] = message
            for message in owners.values():
                queue.pending_messages.discard(message)
                queue.deleted_messages.update(message.all_receipt_handles)
            if owners:
                queue._messages = [m for m in queue._messages if id(m) not in owners]
        success, errors = [], []
        for receipt in receipts:
            if receipt["ReceiptHandle"] in queue.deleted_messages:
                success.append(receipt["Id"])
            else:
                errors.append(
                    {
                        "Id": receipt["Id"],
                        "SenderFault": True,
                        "Code": "ReceiptHandleIsInvalid",
                        "Message": f'The input receipt handle "{receipt["ReceiptHandle"]}" is not a valid '
                        "receipt handle.",
                    }
                )
        return success, errors

    models.SQSBackend.is_message_valid_based_on_retention_period = within_retention  # type: ignore[method-assign]
    models.SQSBackend.delete_message_batch = delete_message_batch  # type: ignore[method-assign]
