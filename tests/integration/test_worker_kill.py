"""A worker killed mid-batch: every event is processed, and each side effect happens once.

Real parts: the local SQS (moto) for delivery and redelivery with real receipt handles, DynamoDB
Local for the shared rate limiter, the worker's guard ledger and the side-effect ledger. The
portal read is an in-process stand-in (the worker's reads are covered against the simulator in e2e).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from b24core.events.message import QueuedEvent
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.worker.dispatch import Worker
from b24core.worker.guard_ledger import GuardLedger
from b24core.worker.handlers import Registry
from b24core.worker.limiter import RateLimit, RateLimiter


class Killed(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the worker catches it."""


@dataclass
class Context:
    function_name: str = "EventWorkerFunction"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:EventWorkerFunction"
    aws_request_id: str = "req"
    remaining_ms: int = 1500

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class Portal_:
    def __init__(self, member_id: str) -> None:
        self.portal = Portal(
            member_id=member_id, domain="p", client_endpoint="https://p/rest/", state=PortalState.ACTIVE
        )

    def batch(self, commands, halt=False):
        return {
            "result": {k: {"ID": str(p["id"]), "TITLE": f"deal {p['id']}"} for k, (_, p) in commands.items()},
            "error": {},
        }


def test_a_worker_killed_mid_batch_processes_everything_with_each_side_effect_once(services, member_id):
    table = services.resources["AppTable"]
    ddb = services.client("dynamodb")
    sqs = services.client("sqs")
    queue = sqs.create_queue(QueueName=f"kill-{member_id[:12]}", Attributes={"VisibilityTimeout": "2"})[
        "QueueUrl"
    ]
    for i in range(30):  # 30 different deals, one event each
        sqs.send_message(
            QueueUrl=queue,
            MessageBody=QueuedEvent(
                event="ONCRMDEALUPDATE",
                member_id=member_id,
                domain="p",
                data={"FIELDS": {"ID": str(i)}},
                ts=str(i),
                received_at=i,
            ).to_json(),
        )

    effects_lock = threading.Lock()
    kill_after = {"n": 12}
    registry = Registry()

    @registry.on("ONCRMDEALUPDATE", fetch="crm.deal.get")
    def side_effect(event, ctx):
        with effects_lock:
            if kill_after["n"] == 0:
                raise Killed()  # dies before this record's side effect
            kill_after["n"] -= 1
        ddb.update_item(
            TableName=table,
            Key={"pk": {"S": f"LEDGER#{member_id}"}, "sk": {"S": event.object_id}},
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    worker = Worker(
        registry,
        load_portal=lambda m: Portal_(m).portal,
        make_client=lambda p: Portal_(p.member_id),
        limiter=RateLimiter(ddb, table, RateLimit(50, 2)),
        requeue=lambda b, d: set(),
        guard=GuardLedger(ddb, table, ttl_s=600),  # its claims last the Context's remaining_ms
        wait=lambda s: None,
    )

    def deliver() -> int:
        """One poll of the event source: receive, invoke, delete what succeeded. Returns messages seen."""
        msgs = sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=1
        ).get("Messages", [])
        if not msgs:
            return 0
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn",
                "awsRegion": "us-east-1",
            }
            for m in msgs
        ]
        try:
            result = worker({"Records": records}, Context())
        except Killed:
            return len(msgs)  # the process died: nothing is deleted, SQS redelivers after the timeout
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        done = [m for m in msgs if m["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(
                QueueUrl=queue,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)],
            )
        return len(msgs)

    deadline = time.monotonic() + 60
    killed_once = False
    while time.monotonic() < deadline:
        seen = deliver()
        if kill_after["n"] == 0 and not killed_once:
            killed_once = True
            kill_after["n"] = 10_000  # the replacement process does not die
        if seen == 0 and _visible(sqs, queue) == 0:
            break
    assert killed_once, "the worker must have been killed mid-batch for this test to mean anything"

    ledger = ddb.query(
        TableName=table,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": f"LEDGER#{member_id}"}},
        ConsistentRead=True,
    )["Items"]
    counts = {item["sk"]["S"]: int(item["n"]["N"]) for item in ledger}
    assert sorted(counts, key=int) == [str(i) for i in range(30)], "every event processed"
    assert set(counts.values()) == {1}, f"side effects repeated: {[k for k, v in counts.items() if v != 1]}"


def _visible(sqs, queue) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


pytestmark = pytest.mark.timeout(120)
