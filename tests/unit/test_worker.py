"""The worker's planning: coalescing per object, batch reads, budget deferral, partial failures."""

from __future__ import annotations

import json
import math

from b24core.events.message import QueuedEvent
from b24core.events.worker import Worker
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.protocol.errors import OperationTimeLimit, QueryLimitExceeded
from b24core.registry import Registry

PORTAL = Portal(member_id="m1", domain="p", client_endpoint="https://p/rest/", state=PortalState.ACTIVE)


class FakeLimiter:
    def __init__(self, budget: float = 1e9):
        self.budget, self.saturated, self.blocked = budget, 0, {}

    def acquire(self, member_id, cost=1.0, method=None):
        if self.budget >= cost:
            self.budget -= cost
            return 0.0
        return 30.0

    def saturate(self, member_id):
        self.saturated += 1

    def block(self, member_id, method, until):
        self.blocked[method] = until


class FakeClient:
    def __init__(self, deals=None, error=None):
        self.portal = PORTAL
        self.batches: list[int] = []
        self.deals = deals if deals is not None else {}
        self.error = error

    def batch(self, commands, halt=False):
        if self.error:
            raise self.error
        assert len(commands) <= 50
        self.batches.append(len(commands))
        result, errors = {}, {}
        for key, (_method, params) in commands.items():
            deal = self.deals.get(str(params["id"]))
            if deal is None:
                errors[key] = {"error": "", "error_description": "Not found"}
            else:
                result[key] = deal
        return {"result": result, "error": errors}


def record(i: int, event: str, deal_id: int, member_id: str = "m1") -> dict:
    body = QueuedEvent(
        event=event,
        member_id=member_id,
        domain="p",
        data={"FIELDS": {"ID": str(deal_id)}},
        ts=str(i),
        received_at=i,
    ).to_json()
    return {
        "messageId": f"msg-{i}",
        "receiptHandle": f"rh-{i}",
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


def make(client: FakeClient, limiter=None, requeued=None):
    reg = Registry()
    seen: list[tuple[str, str | None, dict | None]] = []

    @reg.on("ONCRMDEALADD", "ONCRMDEALUPDATE", fetch="crm.deal.get")
    def upsert(event, ctx):
        seen.append((event.name, event.object_id, event.object))

    @reg.on("ONCRMDEALDELETE", fetch="crm.deal.get")
    def delete(event, ctx):
        seen.append((event.name, event.object_id, None))

    requeued = requeued if requeued is not None else []
    worker = Worker(
        reg,
        load_portal=lambda m: PORTAL,
        make_client=lambda p: client,
        limiter=limiter or FakeLimiter(),
        requeue=lambda body, d: requeued.append((body, d)),
        max_wait_s=1.0,
        wait=lambda s: None,
    )
    return worker, seen, requeued


def test_repeated_updates_of_one_deal_cost_one_read_and_many_deals_share_batch_calls():
    deals = {str(i): {"ID": str(i), "TITLE": f"d{i}"} for i in range(100)}
    client = FakeClient(deals)
    worker, seen, _ = make(client)
    records = [record(i, "ONCRMDEALUPDATE", 7) for i in range(5)]
    records += [record(100 + i, "ONCRMDEALUPDATE", i) for i in range(60) if i != 7]
    out = worker({"Records": records}, None)
    assert out["batchItemFailures"] == []
    assert sum(client.batches) == 60  # deal 7 once, 59 others once each
    assert len(client.batches) == math.ceil(60 / 50)
    assert [s for s in seen if s[1] == "7"] == [("ONCRMDEALUPDATE", "7", deals["7"])]


def test_a_delete_after_updates_needs_no_read():
    client = FakeClient({"9": {"ID": "9"}})
    worker, seen, _ = make(client)
    out = worker({"Records": [record(1, "ONCRMDEALUPDATE", 9), record(2, "ONCRMDEALDELETE", 9)]}, None)
    assert out["batchItemFailures"] == []
    assert client.batches == []
    assert seen == [("ONCRMDEALDELETE", "9", None)]


def test_spent_budget_sends_events_back_delayed_not_failed():
    client = FakeClient({"1": {"ID": "1"}})
    worker, seen, requeued = make(client, limiter=FakeLimiter(budget=0))
    out = worker({"Records": [record(1, "ONCRMDEALUPDATE", 1)]}, None)
    assert out["batchItemFailures"] == [] and seen == []
    ((body, delay),) = requeued
    assert json.loads(body)["data"]["FIELDS"]["ID"] == "1" and delay >= 1


def test_query_limit_exceeded_saturates_the_shared_budget_and_defers():
    limiter = FakeLimiter()
    worker, seen, requeued = make(FakeClient(error=QueryLimitExceeded("x")), limiter=limiter)
    out = worker({"Records": [record(1, "ONCRMDEALUPDATE", 1)]}, None)
    assert out["batchItemFailures"] == [] and limiter.saturated == 1 and len(requeued) == 1


def test_operation_time_limit_blocks_the_method_until_reset():
    import time

    reset = time.time() + 120
    limiter = FakeLimiter()
    worker, _, requeued = make(FakeClient(error=OperationTimeLimit("x", reset_at=reset)), limiter=limiter)
    worker({"Records": [record(1, "ONCRMDEALUPDATE", 1)]}, None)
    assert limiter.blocked == {"batch": reset}
    assert 100 <= requeued[0][1] <= 121


def test_a_deal_deleted_before_it_was_read_is_skipped_not_retried():
    worker, seen, _ = make(FakeClient({}))
    out = worker({"Records": [record(1, "ONCRMDEALUPDATE", 3)]}, None)
    assert out["batchItemFailures"] == [] and seen == []


def test_a_failing_handler_fails_only_its_own_record():
    client = FakeClient({"1": {"ID": "1"}, "2": {"ID": "2"}})
    reg = Registry()

    @reg.on("ONCRMDEALUPDATE", fetch="crm.deal.get")
    def boom(event, ctx):
        if event.object_id == "2":
            raise ValueError("handler bug")

    worker = Worker(
        reg, lambda m: PORTAL, lambda p: client, FakeLimiter(), lambda b, d: None, wait=lambda s: None
    )
    out = worker({"Records": [record(1, "ONCRMDEALUPDATE", 1), record(2, "ONCRMDEALUPDATE", 2)]}, None)
    assert out["batchItemFailures"] == [{"itemIdentifier": "msg-2"}]


def test_malformed_messages_are_dropped_not_retried_forever():
    worker, seen, _ = make(FakeClient({}))
    rec = record(1, "ONCRMDEALUPDATE", 1)
    rec["body"] = "not json"
    assert worker({"Records": [rec]}, None)["batchItemFailures"] == []
