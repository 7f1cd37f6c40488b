"""The intake's SQS sink against the moto server: the message arrives, tokens never do."""

from __future__ import annotations

import json

import pytest

from b24core.events.message import QueuedEvent
from b24core.events.sqs import EnqueueFailed, SqsSink


def test_message_is_in_the_queue_with_attributes(services, member_id):
    sqs = services.client("sqs")
    url = sqs.create_queue(QueueName=f"sink-{member_id[:10]}")["QueueUrl"]
    SqsSink(sqs, url).send(
        QueuedEvent(event="ONCRMDEALADD", member_id=member_id, domain="d", data={"FIELDS": {"ID": "1"}})
    )
    msgs = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
    body = json.loads(msgs[0]["Body"])
    assert body["member_id"] == member_id and body["data"]["FIELDS"]["ID"] == "1"
    assert msgs[0]["MessageAttributes"]["event"]["StringValue"] == "ONCRMDEALADD"


def test_a_queue_that_refuses_raises_instead_of_acknowledging(services, member_id):
    sqs = services.client("sqs")
    with pytest.raises(EnqueueFailed):
        SqsSink(sqs, f"{services.sqs_endpoint}/123456789012/does-not-exist", attempts=2, backoff_s=0).send(
            QueuedEvent(event="X", member_id=member_id, domain="d")
        )
