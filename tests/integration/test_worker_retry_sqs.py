"""A failing portal's events as EventWorkerFunction really runs them (``build_worker``, the SQS queue over
HTTP): they come back as new, delayed messages with a growing attempt count, not as receives that walk
them to the DLQ in minutes."""

from __future__ import annotations

import json
import socket
import time

import pytest

from b24core.entry import wiring
from b24core.events.message import QueuedEvent
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.worker.handlers import Registry


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def queue(services, member_id, deployed) -> str:
    url = services.client("sqs").create_queue(QueueName=f"retry-{member_id[:12]}")["QueueUrl"]
    deployed.env(
        EVENTS_QUEUE_URL=url,
        B24_ALLOW_INSECURE_ENDPOINTS="1",
        B24_RETRY_BASE_S="1",
        B24_RETRY_HOURS="6",
        B24_HTTP_TIMEOUT_S="2",
    )
    return url


def _deliver(sqs, url: str, worker, context) -> list[dict]:
    """One poll of the event source (receive, invoke, delete what succeeded), polling with a deadline for
    the delayed message to become visible. Returns the bodies it delivered."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
            "Messages", []
        )
        if msgs:
            break
    else:
        raise AssertionError("no message came back")
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
    failed = {f["itemIdentifier"] for f in worker({"Records": records}, context)["batchItemFailures"]}
    assert failed == set()  # a portal down is no failure of the record: nothing walks towards the DLQ
    for m in msgs:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in msgs]


def test_a_portal_that_cannot_be_reached_gets_its_event_back_later_and_later(
    services, member_id, queue, deployed
):
    sqs = services.client("sqs")
    down = f"http://127.0.0.1:{_closed_port()}/rest/"
    wiring.portal_store().save(
        Portal(
            member_id,
            "down.example",
            down,
            state=PortalState.ACTIVE,
            access_token="at",
            refresh_token="rt",
            access_expires_at=int(time.time()) + 3600,
        )
    )
    registry, effects = Registry(), []
    registry.on("ONCRMDEALUPDATE", fetch="crm.deal.get")(lambda event, ctx: effects.append(event.object_id))
    worker, context = deployed.worker(registry), deployed.context()
    event = QueuedEvent("ONCRMDEALUPDATE", member_id, "down.example", data={"FIELDS": {"ID": "7"}}, ts="1")
    sqs.send_message(QueueUrl=queue, MessageBody=event.to_json())

    attempts = [_deliver(sqs, queue, worker, context)[0].get("attempt", 0) for _ in range(3)]
    assert attempts == [0, 1, 2]  # the same event, each time a new delayed message one attempt further
    assert effects == []
    left = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    delayed = int(
        sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessagesDelayed"])[
            "Attributes"
        ]["ApproximateNumberOfMessagesDelayed"]
    )
    assert left == [] and delayed == 1  # the third hop waits its 4 s; nothing else was left behind
