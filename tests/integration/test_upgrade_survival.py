"""What a rollback leaves behind survives the older code: a queue message of the next version ends in
EventsDLQ unchanged (the template's redrive policy, moto over HTTP, the production worker), and a portal
record with a token state this release lacks survives a read/save cycle in DynamoDB Local untouched."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import boto3
import pytest

from b24core.delivery.store import DeliveryState
from b24core.entry import wiring
from b24core.events.message import MESSAGE_VERSION, QueuedEvent
from b24core.portals.keys import DELIVERY_SK, PORTAL_SK, portal_pk
from b24core.portals.model import Portal
from b24core.portals.schema import NewerItem
from b24core.portals.states import PortalState, TokenState
from b24core.worker.handlers import Registry
from b24stack.sqs_poller import batch_failures, sqs_record


def test_a_message_of_the_next_version_survives_into_the_dlq_unchanged(services, member_id, deployed):
    sqs = boto3.client("sqs", endpoint_url=services.moto_endpoint, region_name="us-east-1")
    queue, dlq = services.resources["EventsQueue"], services.resources["EventsDLQ"]
    wiring.portal_store().save(
        Portal(member_id, "p.example", "https://p.example/rest/", state=PortalState.ACTIVE)
    )
    deployed.env(B24_RETRY_BASE_S="0")  # a failed record is visible again at once
    handled: list[str | None] = []
    registry = Registry()
    registry.on("ONCRMDEALUPDATE")(lambda event, ctx: handled.append(event.object_id))
    worker = deployed.worker(registry)  # exactly as EventWorkerFunction builds it
    body = json.loads(
        QueuedEvent("ONCRMDEALUPDATE", member_id, "p.example", {"FIELDS": {"ID": "7"}}, ts="1").to_json()
    )
    body.update(v=MESSAGE_VERSION + 1, shape={"new": True})
    newer = json.dumps(body, separators=(",", ":"))
    sqs.send_message(QueueUrl=queue, MessageBody=newer)
    receives = 0
    deadline = time.monotonic() + 60
    in_dlq: list[str] = []
    while time.monotonic() < deadline and not in_dlq:
        # What the event source mapping does: receive, invoke, delete what the function did not fail.
        got = sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
        ).get("Messages", [])
        mine = [m for m in got if member_id in m["Body"]]
        if mine:
            receives += 1
            records = [
                sqs_record(m, "arn:aws:sqs:us-east-1:123456789012:EventsQueue", "us-east-1") for m in mine
            ]
            out = worker({"Records": records}, deployed.context())
            failed = batch_failures(out, {r["messageId"] for r in records})
            assert failed == {r["messageId"] for r in records}  # the older worker never deletes it
            for m in mine:
                if m["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        in_dlq += [m["Body"] for m in dead if member_id in m["Body"]]
    assert in_dlq == [newer]  # byte for byte: a newer worker (or a redrive after the roll forward) reads it
    assert receives == 5  # the template's maxReceiveCount
    assert handled == []


def test_a_record_with_an_unknown_token_state_survives_a_read_save_cycle(services, member_id, deployed):
    store = wiring.portal_store()
    store.save(Portal(member_id, "p.example", "https://p.example/rest/", state=PortalState.ACTIVE))
    ddb = boto3.client("dynamodb", endpoint_url=services.dynamodb_endpoint, region_name="us-east-1")
    table, key = services.resources["AppTable"], {"pk": {"S": portal_pk(member_id)}, "sk": {"S": PORTAL_SK}}
    # What a newer release writes: a token state this one lacks, its schema, an attribute it adds.
    ddb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET token_state = :t, #s = :s, frozen_reason = :r",
        ExpressionAttributeNames={"#s": "schema"},
        ExpressionAttributeValues={":t": {"S": "frozen_by_policy"}, ":s": {"N": "2"}, ":r": {"S": "audit"}},
    )
    before = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    portal = store.get(member_id)  # no crash
    assert portal is not None and portal.token_state == TokenState.REAUTH_REQUIRED
    assert "token_state=frozen_by_policy" in portal.newer_release
    with pytest.raises(NewerItem):
        store.save(older_code_changes(portal))
    assert [p.member_id for p in store.list_all(limit=10_000) if p.member_id == member_id] == [member_id]
    after = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert after == before  # nothing downgraded, the newer attribute kept


def older_code_changes(portal: Portal) -> Portal:
    """What older code would do with it: a transition of its own, then a save."""
    return portal.with_token_state(TokenState.ACTIVE)


def test_no_versioned_save_overwrites_an_item_a_newer_schema_wrote(services, member_id, deployed):
    """The write guard itself (a condition on ``schema``), not only the flag a read sets: a record whose
    values this release knows but whose schema is newer, and a delivery item, are left as they are."""
    store = wiring.portal_store()
    saved = store.save(Portal(member_id, "p.example", "https://p.example/rest/", state=PortalState.ACTIVE))
    delivery = wiring.delivery_store()
    delivery.save(DeliveryState(member_id))
    ddb = boto3.client("dynamodb", endpoint_url=services.dynamodb_endpoint, region_name="us-east-1")
    table = services.resources["AppTable"]
    keys = [{"pk": {"S": portal_pk(member_id)}, "sk": {"S": sk}} for sk in (PORTAL_SK, DELIVERY_SK)]
    for key in keys:  # a newer release saved both (its version bumps as any save's would)
        ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #s = :s, future = :f",
            ExpressionAttributeNames={"#s": "schema"},
            ExpressionAttributeValues={":s": {"N": "2"}, ":f": {"S": "kept"}},
        )
    before = [ddb.get_item(TableName=table, Key=k, ConsistentRead=True)["Item"] for k in keys]
    current = store.get(member_id)
    assert current is not None and current.newer_release == "schema=2"
    # Built by older code from what it knew, at the version it read: still refused, and not as StaleWrite.
    with pytest.raises(NewerItem):
        store.save(replace(saved, newer_release="", version=current.version, domain="older.example"))
    state = delivery.get(member_id)
    assert state is not None
    with pytest.raises(NewerItem):
        delivery.save(state)
    after = [ddb.get_item(TableName=table, Key=k, ConsistentRead=True)["Item"] for k in keys]
    assert after == before
