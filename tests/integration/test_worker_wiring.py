"""The worker exactly as EventWorkerFunction builds it (``build_worker``: settings, the table, the SQS
queue, Powertools idempotency): a redelivered record's side effect happens once. test_worker_kill.py
builds its own idempotency wrapper, so without this test the production wiring could lose its guard
(``idempotent=None``) and every other test would still pass."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from b24core.aws.settings import get_settings
from b24core.entry import wiring
from b24core.entry.worker import build_worker
from b24core.events.message import QueuedEvent
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.worker.handlers import Registry

CACHED = [getattr(wiring, n) for n in dir(wiring) if hasattr(getattr(wiring, n), "cache_clear")]


@pytest.fixture
def deployed_settings(services, monkeypatch) -> Iterator[None]:
    """The environment template.yaml gives the function, pointed at the local services."""
    monkeypatch.setenv("TABLE_NAME", services.resources["AppTable"])
    monkeypatch.setenv("EVENTS_QUEUE_URL", services.resources["EventsQueue"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", services.dynamodb_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", services.moto_endpoint)
    for fn in (get_settings, *CACHED):
        fn.cache_clear()
    yield
    for fn in (get_settings, *CACHED):
        fn.cache_clear()


def _record(member_id: str, deal: int, event: str = "ONCRMDEALUPDATE") -> dict:
    body = QueuedEvent(
        event=event, member_id=member_id, domain="p", data={"FIELDS": {"ID": str(deal)}}, ts="1"
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


def test_the_production_worker_runs_a_side_effect_once_for_a_redelivered_record(
    services, member_id, deployed_settings
) -> None:
    wiring.portal_store().save(
        Portal(member_id, "p.example", "https://p.example/rest/", state=PortalState.ACTIVE)
    )
    registry, effects, states = Registry(), [], []
    registry.on("ONCRMDEALUPDATE")(lambda event, ctx: effects.append(event.object_id))
    registry.on("ONCRMDEALUPDATE", idempotent=True)(lambda event, ctx: states.append(event.object_id))
    worker, idempotency = build_worker(registry)
    context = SimpleNamespace(
        function_name="EventWorkerFunction",
        memory_limit_in_mb=256,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:EventWorkerFunction",
        aws_request_id="r1",
        get_remaining_time_in_millis=lambda: 60_000,
    )
    idempotency.register_lambda_context(context)
    for _ in range(2):  # SQS delivers the same record again (a timeout, a crash before the delete)
        assert worker({"Records": [_record(member_id, 5)]}, context)["batchItemFailures"] == []
    assert effects == ["5"]  # the guarded handler: once
    assert states == ["5", "5"]  # the one declared idempotent: each delivery, no guard record
    assert worker({"Records": [_record(member_id, 6)]}, context)["batchItemFailures"] == []
    assert effects == ["5", "6"]


def test_the_production_worker_records_a_portals_last_received_and_processed_times(
    services, member_id, deployed_settings
) -> None:
    from b24core.worker.health import PortalHealth

    wiring.portal_store().save(
        Portal(member_id, "p.example", "https://p.example/rest/", state=PortalState.ACTIVE)
    )
    registry = Registry()
    registry.on("ONCRMDEALUPDATE", idempotent=True)(lambda event, ctx: None)
    worker, _idempotency = build_worker(registry)
    reader = PortalHealth(wiring.boto_client("dynamodb"), get_settings().table_name)
    assert reader.get(member_id) is None
    record = _record(member_id, 7)
    record["body"] = record["body"].replace('"received_at":0', '"received_at":1700000000')
    assert worker({"Records": [record]}, None)["batchItemFailures"] == []
    health = reader.get(member_id)
    assert health is not None and health.last_received_at == 1700000000
    assert health.last_processed_at > 1700000000


class Killed(BaseException):
    """The process dying: nothing in the worker catches it."""


def test_the_production_worker_killed_before_its_batch_writes_keeps_each_effect_once(
    services, member_id, deployed_settings, monkeypatch
) -> None:
    """The batch's app writes go out together at its end (worker/app_writes.py). The process dies just
    before that: the guarded handler's effect was written inside its guard, the state an idempotent
    handler wrote after it was not. The redelivery writes the state and does not repeat the effect."""
    from b24core.worker.app_writes import BatchWrites

    wiring.portal_store().save(
        Portal(member_id, "p.example", "https://p.example/rest/", state=PortalState.ACTIVE)
    )
    registry = Registry()
    registry.storage_factory = wiring.app_storage

    @registry.on("ONCRMDEALUPDATE")
    def count(event, ctx):  # a delta: must happen once per event
        n = (ctx.storage.get(f"count/{event.object_id}") or {"n": 0})["n"]
        ctx.storage.put(f"count/{event.object_id}", {"n": n + 1})

    @registry.on("ONCRMCONTACTUPDATE", idempotent=True)
    def state(event, ctx):
        ctx.storage.put(f"state/{event.object_id}", {"seen": True})

    worker, idempotency = build_worker(registry)
    context = SimpleNamespace(
        function_name="EventWorkerFunction",
        memory_limit_in_mb=256,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:EventWorkerFunction",
        aws_request_id="r2",
        get_remaining_time_in_millis=lambda: 60_000,
    )
    idempotency.register_lambda_context(context)
    storage = wiring.app_storage(member_id)
    flush_all = BatchWrites.flush_all

    def die(self):
        raise Killed()

    monkeypatch.setattr(BatchWrites, "flush_all", die)
    batch = {"Records": [_record(member_id, 9), _record(member_id, 10, "ONCRMCONTACTUPDATE")]}
    with pytest.raises(Killed):
        worker(batch, context)
    assert storage.get("count/9") == {"n": 1}  # written before its guard completed
    assert storage.get("state/10") is None  # lost with the process: the records were not deleted
    monkeypatch.setattr(BatchWrites, "flush_all", flush_all)
    assert worker(batch, context)["batchItemFailures"] == []  # SQS delivers the batch again
    assert storage.get("state/10") == {"seen": True}
    assert storage.get("count/9") == {"n": 1}
