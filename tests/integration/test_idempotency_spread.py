"""The worker's once-per-event guard records (Powertools idempotency, as EventWorkerFunction wires it)
spread over many partition keys: a storm's guard writes never queue up on one hot DynamoDB partition."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from b24core.aws.settings import get_settings
from b24core.entry import wiring
from b24core.entry.worker import build_worker
from b24core.events.message import QueuedEvent
from b24core.portals.keys import IDEMPOTENCY_PK, IDEMPOTENCY_SHARDS
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.worker.handlers import Registry

CACHED = [getattr(wiring, n) for n in dir(wiring) if hasattr(getattr(wiring, n), "cache_clear")]


@pytest.fixture
def deployed_settings(services, monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("TABLE_NAME", services.resources["AppTable"])
    monkeypatch.setenv("EVENTS_QUEUE_URL", services.resources["EventsQueue"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", services.dynamodb_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", services.moto_endpoint)
    for fn in (get_settings, *CACHED):
        fn.cache_clear()
    yield
    for fn in (get_settings, *CACHED):
        fn.cache_clear()


def _record(member_id: str, deal: int) -> dict:
    body = QueuedEvent(
        event="ONCRMDEALUPDATE", member_id=member_id, domain="p", data={"FIELDS": {"ID": str(deal)}}, ts="1"
    ).to_json()
    return {
        "messageId": f"m-{deal}",
        "receiptHandle": f"rh-{deal}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


def _guard_keys(services, member_id: str) -> dict[str, str]:
    """sk -> pk of every guard record of this test's portal's events (their sk names the function)."""
    ddb = services.client("dynamodb")
    found: dict[str, str] = {}
    kwargs: dict = {
        "TableName": services.resources["AppTable"],
        "FilterExpression": "begins_with(pk, :p)",
        "ExpressionAttributeValues": {":p": {"S": IDEMPOTENCY_PK}},
    }
    while True:
        page = ddb.scan(**kwargs)
        for item in page.get("Items", []):
            found[item["sk"]["S"]] = item["pk"]["S"]
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_guard_records_of_a_storm_land_on_many_partition_keys_and_still_guard(
    services, member_id, deployed_settings
) -> None:
    wiring.portal_store().save(
        Portal(member_id, "p.example", "https://p.example/rest/", state=PortalState.ACTIVE)
    )
    registry, effects = Registry(), []
    registry.on("ONCRMDEALUPDATE")(lambda event, ctx: effects.append(event.object_id))
    worker, idempotency = build_worker(registry)
    context = SimpleNamespace(
        function_name=f"EventWorkerFunction-{member_id[:8]}",
        memory_limit_in_mb=256,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:EventWorkerFunction",
        aws_request_id="r1",
        get_remaining_time_in_millis=lambda: 60_000,
    )
    idempotency.register_lambda_context(context)
    before = set(_guard_keys(services, member_id))
    records = [_record(member_id, deal) for deal in range(40)]
    assert worker({"Records": records}, context)["batchItemFailures"] == []
    assert sorted(effects, key=int) == [str(d) for d in range(40)]
    mine = {sk: pk for sk, pk in _guard_keys(services, member_id).items() if sk not in before}
    assert len(mine) == 40  # one guard record per event
    partitions = set(mine.values())
    assert len(partitions) >= 16  # 40 events over 64 shards: a single hot key would give 1
    assert all(pk.startswith(f"{IDEMPOTENCY_PK}#") for pk in partitions)
    assert len(partitions) <= IDEMPOTENCY_SHARDS
    # Spread, still a guard: the same records delivered again run no side effect twice.
    assert worker({"Records": records}, context)["batchItemFailures"] == []
    assert len(effects) == 40
