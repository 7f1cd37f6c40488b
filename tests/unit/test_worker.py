"""The worker's planning: coalescing per object, batch reads, budget deferral, partial failures."""

from __future__ import annotations

import json

from b24core.bitrix.errors import OperationTimeLimit, QueryLimitExceeded
from b24core.events.message import QueuedEvent
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.worker.dispatch import Worker
from b24core.worker.handlers import Registry
from b24core.worker.packing import MAX_HOLDS

PORTAL = Portal(member_id="m1", domain="p", client_endpoint="https://p/rest/", state=PortalState.ACTIVE)


class FakeLimiter:
    def __init__(self, budget: float = 1e9):
        self.budget, self.saturated, self.blocked = budget, 0, {}

    def acquire(self, member_id, cost=1.0, method=None):
        if self.budget >= cost:
            self.budget -= cost
            return 0.0
        return 30.0

    def wait_for(self, member_id, cost=1.0, method=None):
        return 0.0 if self.budget >= cost else 30.0

    request_s_value = 5.0  # a slow limit (Y = 0.2/s): holding a fragment for company pays
    others = True  # another worker spends this portal's budget too (read claims pay)

    def shared(self, member_id):
        return self.others

    def request_s(self, member_id):
        return self.request_s_value

    def saturate(self, member_id):
        self.saturated += 1

    def block(self, member_id, method, until):
        self.blocked[method] = until


class FakeClient:
    def __init__(self, deals=None, error=None, now=1000.0):
        self.portal = PORTAL
        self.now = now
        self.batches: list[int] = []
        self.deals = deals if deals is not None else {}
        self.error = error

    def batch(self, commands, halt=False):
        if self.error:
            raise self.error
        assert len(commands) <= 50
        self.batches.append(len(commands))
        result, errors, times = {}, {}, {}
        for key, (_method, params) in commands.items():
            deal = self.deals.get(str(params["id"]))
            times[key] = {"start": self.now, "finish": self.now}
            if deal is None:
                errors[key] = {"error": "", "error_description": "Not found"}
            else:
                result[key] = deal
        return {"result": result, "error": errors, "time": times}


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


def make(client: FakeClient, limiter=None, requeued=None, marks=None, refuse=()):
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
        requeue=lambda bodies, d: requeue(requeued, refuse, bodies, d),
        max_wait_s=1.0,
        wait=lambda s: None,
        marks=marks,
    )
    return worker, seen, requeued


def requeue(requeued, refuse, bodies, delay):
    """SQS's SendMessageBatch: takes what it takes, says which positions it refused."""
    failed = set()
    for i, body in enumerate(bodies):
        if json.loads(body)["data"]["FIELDS"]["ID"] in refuse:
            failed.add(i)
        else:
            requeued.append((body, delay))
    return failed


def test_repeated_updates_of_one_deal_cost_one_read_and_many_deals_share_batch_calls():
    deals = {str(i): {"ID": str(i), "TITLE": f"d{i}"} for i in range(100)}
    client = FakeClient(deals)
    worker, seen, _ = make(client)
    records = [record(i, "ONCRMDEALUPDATE", 7) for i in range(5)]
    records += [record(100 + i, "ONCRMDEALUPDATE", i) for i in range(45) if i != 7]
    out = worker({"Records": records}, None)
    assert out["batchItemFailures"] == []
    assert client.batches == [45]  # deal 7 once, 44 others once each: one request
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
        reg, lambda m: PORTAL, lambda p: client, FakeLimiter(), lambda b, d: set(), wait=lambda s: None
    )
    out = worker({"Records": [record(1, "ONCRMDEALUPDATE", 1), record(2, "ONCRMDEALUPDATE", 2)]}, None)
    assert out["batchItemFailures"] == [{"itemIdentifier": "msg-2"}]


def test_unreadable_messages_are_failed_for_the_dlq_not_deleted():
    worker, seen, _ = make(FakeClient({"1": {"ID": "1"}}))
    rec = record(1, "ONCRMDEALUPDATE", 1)
    rec["body"] = "not json"
    assert worker({"Records": [rec, record(2, "ONCRMDEALUPDATE", 1)]}, None)["batchItemFailures"] == [
        {"itemIdentifier": "msg-1"}
    ]
    assert seen == [("ONCRMDEALUPDATE", "1", {"ID": "1"})]  # the readable one is handled


class FakeMarks:
    """The read-marks store in memory: (member, (method, id)) -> portal time of the last read."""

    def __init__(self, known=None):
        self.t = dict(known or {})

    def last_reads(self, member_id, keys):
        return {k: self.t[(member_id, k)] for k in keys if (member_id, k) in self.t}

    def mark(self, member_id, reads):
        self.t.update({(member_id, k): v for k, v in reads.items()})
        return True


def test_a_read_in_an_earlier_batch_covers_older_events_of_the_object_but_not_newer_ones():
    deals = {"1": {"ID": "1"}, "2": {"ID": "2"}}
    marks = FakeMarks()
    client = FakeClient(deals, now=1000.0)
    worker, seen, _ = make(client, marks=marks)
    worker({"Records": [record(900, "ONCRMDEALUPDATE", 1), record(901, "ONCRMDEALUPDATE", 2)]}, None)
    assert sum(client.batches) == 2 and marks.t[("m1", ("crm.deal.get", "1"))] == 1000.0
    seen.clear()
    # ts 998 changed before the read at 1000 (whole seconds: before 999 < 1000 - margin): covered.
    # ts 999 may be 999.9, too close to the read: read again. ts 1005 is after it: read again.
    out = worker({"Records": [record(998, "ONCRMDEALUPDATE", 1), record(999, "ONCRMDEALUPDATE", 2)]}, None)
    assert out["batchItemFailures"] == []
    assert sum(client.batches) == 3 and [s[1] for s in seen] == ["2"]
    worker({"Records": [record(1005, "ONCRMDEALUPDATE", 1)]}, None)
    assert sum(client.batches) == 4 and [s[1] for s in seen] == ["2", "1"]


def test_events_without_a_timestamp_are_always_read():
    marks = FakeMarks({("m1", ("crm.deal.get", "1")): 10**10})
    client = FakeClient({"1": {"ID": "1"}})
    worker, seen, _ = make(client, marks=marks)
    rec = record(1, "ONCRMDEALUPDATE", 1)
    body = json.loads(rec["body"])
    body["ts"] = ""
    rec["body"] = json.dumps(body)
    worker({"Records": [rec]}, None)
    assert client.batches == [1] and len(seen) == 1


def test_reads_done_before_the_budget_ran_out_are_kept_and_only_the_rest_goes_back():
    deals = {str(i): {"ID": str(i)} for i in range(120)}
    client = FakeClient(deals)
    worker, seen, requeued = make(client, limiter=FakeLimiter(budget=2))
    records = [record(i, "ONCRMDEALUPDATE", i) for i in range(120)] + [record(500, "ONCRMDEALDELETE", 999)]
    out = worker({"Records": records}, None)
    assert out["batchItemFailures"] == []
    assert client.batches == [50, 50]
    handled = {s[1] for s in seen}
    assert len(handled - {"999"}) == 100 and "999" in handled  # the delete needs no budget
    back = sorted(int(json.loads(b)["data"]["FIELDS"]["ID"]) for b, _ in requeued)
    assert back == list(range(100, 120)) and all(d >= 1 for _, d in requeued)


def test_a_part_filled_read_is_held_back_once_the_budget_is_spent_and_read_when_held_enough():
    deals = {str(i): {"ID": str(i)} for i in range(60)}
    client = FakeClient(deals)
    limiter = FakeLimiter(budget=1)
    worker, seen, requeued = make(client, limiter=limiter)
    worker({"Records": [record(i, "ONCRMDEALUPDATE", i) for i in range(60)]}, None)
    assert client.batches == [50] and len(requeued) == 10
    assert all(json.loads(b)["held"] == 1 for b, _ in requeued)
    # Held MAX_HOLDS times already: read even though that takes a part-filled request.
    limiter.budget = 1
    full = [record(i, "ONCRMDEALUPDATE", i) for i in range(50)]
    tail = []
    for n, (body, _) in enumerate(requeued):
        rec = record(1000 + n, "ONCRMDEALUPDATE", 0)
        msg = json.loads(body)
        msg["held"] = MAX_HOLDS
        rec["body"] = json.dumps(msg)
        tail.append(rec)
    requeued.clear()
    limiter.budget = 2
    worker({"Records": full + tail}, None)
    assert client.batches[-2:] == [50, 10] and requeued == []


def test_a_batch_with_fewer_than_fifty_reads_is_read_at_once_and_a_backlog_tail_waits_briefly():
    deals = {str(i): {"ID": str(i)} for i in range(60)}
    client = FakeClient(deals)
    worker, _, requeued = make(client, limiter=FakeLimiter(budget=5))
    worker({"Records": [record(i, "ONCRMDEALUPDATE", i) for i in range(40)]}, None)
    assert client.batches == [40] and requeued == []
    worker({"Records": [record(100 + i, "ONCRMDEALUPDATE", i) for i in range(60)]}, None)
    assert client.batches == [40, 50] and len(requeued) == 10
    assert all(d == 1 for _, d in requeued)  # the budget has room: it only waits for company


def test_an_event_sqs_would_not_take_back_fails_instead_of_vanishing():
    client = FakeClient({"1": {"ID": "1"}, "2": {"ID": "2"}})
    worker, seen, requeued = make(client, limiter=FakeLimiter(budget=0), refuse={"2"})
    out = worker({"Records": [record(1, "ONCRMDEALUPDATE", 1), record(2, "ONCRMDEALUPDATE", 2)]}, None)
    assert out["batchItemFailures"] == [{"itemIdentifier": "msg-2"}]
    assert len(requeued) == 1 and seen == []


def test_handler_writes_and_reads_carry_the_apps_auth_connector():
    class Recording(FakeClient):
        def __init__(self, deals):
            super().__init__(deals)
            self.calls, self.commands = [], []

        def call(self, method, params=None):
            self.calls.append((method, params))
            return True

        def batch(self, commands, halt=False):
            self.commands += list(commands.values())
            return super().batch(commands, halt)

    client = Recording({"1": {"ID": "1"}})
    reg = Registry()

    @reg.on("ONCRMDEALUPDATE", fetch="crm.deal.get")
    def write_back(event, ctx):
        ctx.client.call("crm.deal.update", {"id": event.object_id, "fields": {"TITLE": "seen"}})
        ctx.client.call("crm.deal.update", {"id": event.object_id, "AUTH_CONNECTOR": "theirs"})

    worker = Worker(
        reg,
        lambda m: PORTAL,
        lambda p: client,
        FakeLimiter(),
        lambda b, d: set(),
        wait=lambda s: None,
        connector="b24app",
    )
    worker({"Records": [record(1, "ONCRMDEALUPDATE", 1)]}, None)
    assert [p.get("auth_connector") for _, p in client.calls] == ["b24app", None]
    assert client.calls[1][1]["AUTH_CONNECTOR"] == "theirs"  # a handler's own choice is kept
    assert all(p["auth_connector"] == "b24app" for _, p in client.commands)


def _two_portals(bad_client):
    """Portal m1 answers normally; m2's client is ``bad_client``."""
    good = FakeClient({str(i): {"ID": str(i)} for i in range(10)})
    other = Portal(member_id="m2", domain="q", client_endpoint="https://q/rest/", state=PortalState.ACTIVE)
    reg = Registry()
    seen: list[tuple[str, str | None]] = []

    @reg.on("ONCRMDEALUPDATE", fetch="crm.deal.get")
    def upsert(event, ctx):
        seen.append((event.member_id, event.object_id))

    requeued: list = []
    worker = Worker(
        reg,
        load_portal=lambda m: PORTAL if m == "m1" else other,
        make_client=lambda p: good if p.member_id == "m1" else bad_client,
        limiter=FakeLimiter(),
        requeue=lambda bodies, d: requeue(requeued, (), bodies, d),
        max_wait_s=1.0,
        wait=lambda s: None,
    )
    records = [record(i, "ONCRMDEALUPDATE", i, member_id="m1" if i % 2 else "m2") for i in range(10)]
    return worker, records, seen, requeued


class RaisingClient(FakeClient):
    """A portal whose answer breaks something the worker did not foresee."""

    def batch(self, commands, halt=False):
        raise ValueError("invalid literal for int() with base 10: '²'")


def test_a_portal_whose_answer_breaks_the_reads_fails_only_its_own_events():
    worker, records, seen, _ = _two_portals(RaisingClient())
    out = worker({"Records": records}, None)
    failed = {f["itemIdentifier"] for f in out["batchItemFailures"]}
    assert failed == {f"msg-{i}" for i in range(10) if i % 2 == 0}  # m2's, and only m2's
    assert sorted(s[1] for s in seen) == sorted(str(i) for i in range(10) if i % 2)  # m1's all handled


class SlowClient(FakeClient):
    """A box that takes its time: each batch answer advances the worker's clock by 5 s."""

    def __init__(self, clock):
        super().__init__({str(i): {"ID": str(i)} for i in range(200)})
        self.clock = clock

    def batch(self, commands, halt=False):
        self.clock[0] += 5.0
        return super().batch(commands, halt)


def test_a_slow_portal_spends_only_its_own_share_and_its_other_events_come_back_later(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("b24core.worker.dispatch.time.monotonic", lambda: clock[0])
    worker, _, seen, requeued = _two_portals(SlowClient(clock))
    worker.portal_budget_s = 8.0
    # m2 has 150 events: three read requests of 50, 5 s each; m1 has 5.
    records = [record(i, "ONCRMDEALUPDATE", i, member_id="m2") for i in range(150)]
    records += [record(1000 + i, "ONCRMDEALUPDATE", i, member_id="m1") for i in range(5)]
    out = worker({"Records": records}, None)
    assert out["batchItemFailures"] == []
    assert sorted(s[1] for s in seen if s[0] == "m1") == [str(i) for i in range(5)]  # m1 untouched
    deferred = [json.loads(body)["member_id"] for body, delay in requeued]
    assert deferred and set(deferred) == {"m2"}  # what m2 could not read in its share comes back later
    assert all(delay == 30 for _, delay in requeued)


def guarded_worker(reg: Registry, guard) -> Worker:
    """A worker with the given guard ledger, for handlers not declared idempotent (no reads, no budget)."""
    return Worker(
        reg,
        load_portal=lambda m: PORTAL,
        make_client=lambda p: FakeClient({}),
        limiter=FakeLimiter(),
        requeue=lambda bodies, d: set(),
        guard=guard,
        max_wait_s=1.0,
        wait=lambda s: None,
    )


def test_only_handlers_not_declared_idempotent_run_behind_the_once_per_event_guard():
    reg = Registry()
    ran: list[str] = []
    reg.on("ONCRMDEALUPDATE", idempotent=True)(lambda e, c: ran.append("state"))
    reg.on("ONCRMDEALUPDATE")(lambda e, c: ran.append("effect"))
    from b24core.worker.guard_ledger import COMPLETED, InMemoryGuardLedger

    guard = InMemoryGuardLedger()

    worker = guarded_worker(reg, guard)
    event = record(1, "ONCRMDEALUPDATE", 5)
    for _ in range(2):  # the same record delivered twice
        assert worker({"Records": [event]}, None)["batchItemFailures"] == []
    assert ran == ["state", "effect", "state"]  # the side effect once, the idempotent handler each time
    assert list(guard.items.values()) == [COMPLETED]  # one guard record: the event's


def test_a_record_another_worker_is_handling_fails_and_runs_nothing():
    from b24core.worker.guard_ledger import INPROGRESS, InMemoryGuardLedger, guard_key

    reg, ran = Registry(), []
    reg.on("ONCRMDEALUPDATE", idempotent=True)(lambda e, c: ran.append("state"))
    reg.on("ONCRMDEALUPDATE")(lambda e, c: ran.append("effect"))
    guard = InMemoryGuardLedger()
    event = record(1, "ONCRMDEALUPDATE", 5)
    guard.items[guard_key(json.loads(event["body"]))] = INPROGRESS  # claimed by a live worker
    worker = guarded_worker(reg, guard)
    assert worker({"Records": [event]}, None)["batchItemFailures"] == [{"itemIdentifier": "msg-1"}]
    assert ran == []
    assert worker._plan.fail_reason == {"msg-1": "in_progress"}  # EventsFailed{reason=in_progress}
    assert list(guard.items.values()) == [INPROGRESS]  # its claim is the other worker's: left alone


def test_the_same_message_twice_in_one_batch_runs_its_guarded_handler_once():
    from b24core.worker.guard_ledger import InMemoryGuardLedger

    reg, ran = Registry(), []
    reg.on("ONCRMDEALUPDATE")(lambda e, c: ran.append(e.object_id))
    worker = guarded_worker(reg, InMemoryGuardLedger())
    first = record(1, "ONCRMDEALUPDATE", 5)
    again = {**first, "messageId": "msg-again"}
    assert worker({"Records": [first, again]}, None)["batchItemFailures"] == []
    assert ran == ["5"]


def test_every_event_of_a_listable_kind_is_marked_seen_once_per_batch_with_its_source():
    from dataclasses import replace as _replace

    from b24core.worker.seen_marks import InMemorySeenMarks, Seen

    client = FakeClient(deals={"7": {"ID": "7"}, "8": {"ID": "8"}})
    worker, _seen, _ = make(client)
    marks = InMemorySeenMarks()
    worker.seen, worker.kind_of = marks, {"ONCRMDEALUPDATE": "crm.deal", "ONCRMDEALDELETE": "crm.deal"}.get
    polled = json.loads(record(40, "ONCRMDEALUPDATE", 8)["body"])
    polled["source"] = "poll"
    records = [
        record(10, "ONCRMDEALUPDATE", 7),
        record(30, "ONCRMDEALUPDATE", 7),  # the newest change of 7 counts
        {**record(40, "ONCRMDEALUPDATE", 8), "body": json.dumps(polled), "messageId": "msg-p"},
        record(50, "ONCRMDEALDELETE", 9),
        record(60, "ONEXTERNALCALLSTART", 1),  # not a listable kind: no mark
    ]
    worker.prefetch(records)
    assert marks.items == {
        ("m1", ("crm.deal", 7)): Seen(30.0, 30.0, 0.0),
        ("m1", ("crm.deal", 8)): Seen(40.0, 0.0, 0.0),  # the bundle's own polling proves no delivery
        ("m1", ("crm.deal", 9)): Seen(50.0, 50.0, 50.0),
    }
    assert _replace(Seen(1, 2, 3)).merged(Seen(3, 1, 0)) == Seen(3, 2, 3)


def test_an_event_not_handled_after_its_read_is_read_again_when_it_returns():
    """A read whose event was not handled (its handler failed; SQS brings it back) leaves no read
    mark: otherwise the returning event would find itself "covered" and never reach a handler."""
    marks = FakeMarks()
    client = FakeClient({"1": {"ID": "1"}, "2": {"ID": "2"}}, now=1000.0)
    worker, seen, requeued = make(client, marks=marks)
    failing = {"on": True}

    @worker.registry.on("ONCRMDEALUPDATE")
    def fails_first(event, ctx):
        if failing["on"]:
            raise RuntimeError("down for a moment")

    batch = {"Records": [record(900, "ONCRMDEALUPDATE", 1), record(901, "ONCRMDEALUPDATE", 2)]}
    out = worker(batch, None)
    assert len(out["batchItemFailures"]) == 2
    assert marks.t == {}  # read, but not handled: no mark
    failing["on"] = False
    seen.clear()
    worker(batch, None)
    assert sorted(s[1] for s in seen) == ["1", "2"]  # read again and handled
    assert set(marks.t) == {("m1", ("crm.deal.get", "1")), ("m1", ("crm.deal.get", "2"))}


def test_events_whose_objects_were_read_are_handled_even_when_the_read_waited_past_the_share(monkeypatch):
    """At a slow limit one read may wait longer than the portal's share of the invocation for its
    budget; sending its events back then would buy the same read again (requests above the minimum)."""
    clock = [0.0]
    monkeypatch.setattr("b24core.worker.dispatch.time.monotonic", lambda: clock[0])

    class WaitingClient(SlowClient):
        def batch(self, commands, halt=False):
            self.clock[0] += 9.0  # waited for the budget, longer than portal_budget_s
            return FakeClient.batch(self, commands, halt)

    worker, _, seen, requeued = _two_portals(WaitingClient(clock))
    worker.portal_budget_s = 8.0
    records = [record(i, "ONCRMDEALUPDATE", i, member_id="m2") for i in range(10)]
    assert worker({"Records": records}, None)["batchItemFailures"] == []
    assert sorted(s[1] for s in seen) == sorted(str(i) for i in range(10))
    assert requeued == []


def test_waiting_for_the_portals_budget_does_not_count_as_the_portal_being_slow(monkeypatch):
    """At a slow limit (k = 10) each read waits seconds for its budget; that is the limit's pace, not
    a slow box: the portal's later reads are not sent back as "portal_slow" for it."""
    clock = [0.0]
    monkeypatch.setattr("b24core.worker.dispatch.time.monotonic", lambda: clock[0])

    class PacedLimiter(FakeLimiter):
        def acquire(self, member_id, cost=1.0, method=None):
            self.asks = getattr(self, "asks", 0) + 1
            return 0.0 if self.asks % 2 == 0 else 5.0  # every request waits 5 s first

    client = FakeClient({str(i): {"ID": str(i)} for i in range(200)}, now=1000.0)
    worker, seen, requeued = make(client, limiter=PacedLimiter())
    worker.max_wait_s, worker.portal_budget_s = 100.0, 8.0

    def wait(seconds):
        clock[0] += seconds

    worker.wait = wait
    records = [record(i, "ONCRMDEALUPDATE", i) for i in range(150)]  # three requests of 50
    assert worker({"Records": records}, None)["batchItemFailures"] == []
    assert requeued == [] and len(seen) == 150


def test_a_part_filled_first_request_waits_for_company_only_while_the_budget_is_busy():
    """Two workers split a storm's returning events: each alone would spend a whole request on a
    fragment. While the budget would make the request wait anyway, the fragment goes back to ride with
    others; with room in the budget it is read at once (quiet times keep their latency)."""
    deals = {str(i): {"ID": str(i)} for i in range(1, 11)}
    busy = FakeLimiter(budget=0)
    worker, seen, requeued = make(FakeClient(deals), limiter=busy)
    worker({"Records": [record(i, "ONCRMDEALUPDATE", i) for i in range(1, 11)]}, None)
    assert len(requeued) == 10 and all(json.loads(body)["held"] == 1 for body, _ in requeued)
    client = FakeClient(deals)
    worker, seen, requeued = make(client)  # the budget has room
    worker({"Records": [record(i, "ONCRMDEALUPDATE", i) for i in range(1, 11)]}, None)
    assert client.batches == [10] and requeued == [] and len(seen) == 10


def test_at_the_clouds_own_pace_a_fragment_waits_for_the_budget_instead_of_company():
    """At 2 requests a second a request costs half a second, a hold at least one (SQS's whole-second
    delays): the fragment is read as soon as the budget allows, not held."""
    deals = {str(i): {"ID": str(i)} for i in range(1, 11)}
    limiter = FakeLimiter(budget=0)
    limiter.request_s_value = 0.5
    worker, seen, requeued = make(FakeClient(deals), limiter=limiter)
    worker({"Records": [record(i, "ONCRMDEALUPDATE", i) for i in range(1, 11)]}, None)
    assert len(requeued) == 10 and all("held" not in json.loads(body) for body, _ in requeued)
