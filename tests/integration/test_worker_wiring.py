"""The worker exactly as EventWorkerFunction builds it (``build_worker``: settings, the table, the SQS
queue, the guard ledger): a redelivered record's side effect happens once. test_worker_kill.py builds
its own ledger, so without this test the production wiring could lose its guard (``guard=None``) and
every other test would still pass."""

from __future__ import annotations

import json
import math
import time
import uuid

import pytest

from b24core.aws.settings import get_settings
from b24core.entry import wiring
from b24core.portals.keys import IDEMPOTENCY_PK
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.worker.handlers import Registry


def test_the_production_worker_runs_a_side_effect_once_for_a_redelivered_record(
    services, member_id, deployed
) -> None:
    wiring.portal_store().save(
        Portal(member_id, "p.example", "https://p.example/rest/", state=PortalState.ACTIVE)
    )
    registry, effects, states = Registry(), [], []
    registry.on("ONCRMDEALUPDATE")(lambda event, ctx: effects.append(event.object_id))
    registry.on("ONCRMDEALUPDATE", idempotent=True)(lambda event, ctx: states.append(event.object_id))
    worker, context = deployed.worker(registry), deployed.context("r1")
    for _ in range(2):  # SQS delivers the same record again (a timeout, a crash before the delete)
        assert worker({"Records": [deployed.record(member_id, 5)]}, context)["batchItemFailures"] == []
    assert effects == ["5"]  # the guarded handler: once
    assert states == ["5", "5"]  # the one declared idempotent: each delivery, no guard record
    assert worker({"Records": [deployed.record(member_id, 6)]}, context)["batchItemFailures"] == []
    assert effects == ["5", "6"]


def test_the_production_worker_records_a_portals_last_received_and_processed_times(
    services, member_id, deployed
) -> None:
    from b24core.worker.health import PortalHealth

    wiring.portal_store().save(
        Portal(member_id, "p.example", "https://p.example/rest/", state=PortalState.ACTIVE)
    )
    registry = Registry()
    registry.on("ONCRMDEALUPDATE", idempotent=True)(lambda event, ctx: None)
    worker = deployed.worker(registry)
    reader = PortalHealth(wiring.boto_client("dynamodb"), get_settings().table_name)
    assert reader.get(member_id) is None
    record = deployed.record(member_id, 7)
    record["body"] = record["body"].replace('"received_at":0', '"received_at":1700000000')
    assert worker({"Records": [record]}, None)["batchItemFailures"] == []
    health = reader.get(member_id)
    assert health is not None and health.last_received_at == 1700000000
    assert health.last_processed_at > 1700000000


ACTIVE = PortalState.ACTIVE


class Killed(BaseException):
    """The process dying: nothing in the worker catches it."""


def test_the_production_worker_killed_before_its_batch_writes_keeps_each_effect_once(
    services, member_id, deployed, monkeypatch
) -> None:
    """The batch's app writes go out together at its end (worker/app_writes.py). The process dies just
    before that: the guarded handler's effect was written with its guard's completion, the state an
    idempotent handler wrote after it was not. The redelivery writes the state and does not repeat the
    effect."""
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

    worker, context = deployed.worker(registry), deployed.context("r2")
    storage = wiring.app_storage(member_id)
    flush_all = BatchWrites.flush_all

    def die(self):
        raise Killed()

    monkeypatch.setattr(BatchWrites, "flush_all", die)
    batch = {"Records": [deployed.record(member_id, 9), deployed.record(member_id, 10, "ONCRMCONTACTUPDATE")]}
    with pytest.raises(Killed):
        worker(batch, context)
    assert storage.get("count/9") == {"n": 1}  # written before its guard completed
    assert storage.get("state/10") is None  # lost with the process: the records were not deleted
    monkeypatch.setattr(BatchWrites, "flush_all", flush_all)
    assert worker(batch, context)["batchItemFailures"] == []  # SQS delivers the batch again
    assert storage.get("state/10") == {"seen": True}
    assert storage.get("count/9") == {"n": 1}


def _ledger_requests(client) -> list[str]:
    """Names the DynamoDB requests that touch the guard ledger's items, as the worker sends them."""
    sent: list[str] = []

    def count(params, model, **kwargs):
        if IDEMPOTENCY_PK in json.dumps(params, default=str):
            sent.append(model.name)

    client.meta.events.register("provide-client-params.dynamodb.*", count)
    return sent


def test_the_production_worker_claims_a_batch_of_guarded_events_in_one_request_per_hundred(
    services, deployed
) -> None:
    """60 events of handlers not declared idempotent, over 2 portals: Powertools' guard sent 2 requests
    per event (120); the ledger claims them at once and completes each with its own write (61)."""
    members = [uuid.uuid4().hex, uuid.uuid4().hex]
    for member in members:
        wiring.portal_store().save(Portal(member, "p.example", "https://p.example/rest/", state=ACTIVE))
    registry, effects = Registry(), []
    registry.storage_factory = wiring.app_storage

    @registry.on("ONCRMDEALUPDATE")
    def count(event, ctx):
        effects.append((event.member_id, event.object_id))
        n = (ctx.storage.get(f"count/{event.object_id}") or {"n": 0})["n"]
        ctx.storage.put(f"count/{event.object_id}", {"n": n + 1})

    worker, context = deployed.worker(registry), deployed.context("r3")
    sent = _ledger_requests(wiring.boto_client("dynamodb"))
    n = 60
    batch = {"Records": [deployed.record(members[d % 2], d, mid=f"m-{d}") for d in range(n)]}
    assert worker(batch, context)["batchItemFailures"] == []
    assert len(effects) == n
    claims = math.ceil(n / 100)
    assert sent.count("TransactWriteItems") == claims + n  # the claims, then each event's commit
    assert len(sent) <= n + claims * 2 + 2 < 2 * n  # batched: fewer than Powertools' 2 per event
    for k, member in enumerate(members):
        storage = wiring.app_storage(member)
        assert [storage.get(f"count/{d}") for d in range(k, n, 2)] == [{"n": 1}] * (n // 2)
    sent.clear()
    assert worker(batch, context)["batchItemFailures"] == []  # SQS delivers the whole batch again
    assert len(effects) == n  # no handler ran twice
    assert len(sent) <= claims * 2  # a redelivered batch costs its claims' answer, nothing per event


def test_a_worker_killed_between_claim_and_commit_leaves_no_effect_and_the_event_runs_once_later(
    services, member_id, deployed
) -> None:
    """The claims of a killed worker hold its events until the invocation's time is up (another worker
    runs none of them meanwhile); then the redelivery runs each once, and nothing of the killed run's
    uncommitted writes is there."""
    wiring.portal_store().save(Portal(member_id, "p.example", "https://p.example/rest/", state=ACTIVE))
    registry, runs, die = Registry(), [], {"at": "2"}
    registry.storage_factory = wiring.app_storage

    @registry.on("ONCRMDEALUPDATE")
    def count(event, ctx):
        runs.append(event.object_id)
        n = (ctx.storage.get(f"count/{event.object_id}") or {"n": 0})["n"]
        ctx.storage.put(f"count/{event.object_id}", {"n": n + 1})
        if event.object_id == die["at"]:
            raise Killed()  # after its write, before its commit

    worker = deployed.worker(registry)
    storage = wiring.app_storage(member_id)
    batch = {"Records": [deployed.record(member_id, d) for d in (1, 2, 3)]}
    with pytest.raises(Killed):
        worker(batch, deployed.context("r4", remaining_ms=1_000))
    assert runs == ["1", "2"]
    assert storage.get("count/1") == {"n": 1}  # completed before the kill
    assert storage.get("count/2") is None  # killed before its commit: no effect
    die["at"] = ""
    # Delivered again at once: the killed worker's claims are live, so 2 and 3 wait.
    failed = {f["itemIdentifier"] for f in worker(batch, deployed.context("r5"))["batchItemFailures"]}
    assert failed == {"m-2", "m-3"} and runs == ["1", "2"]
    deadline = time.monotonic() + 30
    while failed and time.monotonic() < deadline:  # the next deliveries, until the claims expired
        time.sleep(0.2)
        failed = {f["itemIdentifier"] for f in worker(batch, deployed.context("r6"))["batchItemFailures"]}
    assert failed == set()
    assert sorted(runs) == ["1", "2", "2", "3"]  # 2 again (its first run left nothing), 3 once
    assert [storage.get(f"count/{d}") for d in (1, 2, 3)] == [{"n": 1}] * 3
