"""A failing portal's events come back by delayed requeues for hours before the DLQ; poison events and
handler bugs still take the fast path (failed record → visibility backoff → DLQ after N receives)."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from b24core.bitrix.errors import ServerError, TransportError
from b24core.events.message import QueuedEvent
from b24core.tokens.outcomes import RefreshUnavailable
from b24core.worker import retry
from b24core.worker.dispatch import Worker
from b24core.worker.handlers import Registry
from b24core.worker.retry import MAX_DELAY_S, RetryPolicy
from tests.unit.test_worker import PORTAL, FakeClient, FakeLimiter, record

HOURS_6 = 6 * 3600.0
SIX_HOURS = RetryPolicy(window_s=HOURS_6)
NOW = 1_767_225_600  # the wall clock the retry module reads, fixed: a hop's failing_since is exact


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> int:
    """The retry module's clock stopped at NOW (the worker reads it through retry.send_later)."""
    monkeypatch.setattr(retry, "time", SimpleNamespace(time=lambda: float(NOW)))
    return NOW


def make(client, policy=SIX_HOURS, handler=None, refuse=False):
    reg, seen, requeued = Registry(), [], []

    @reg.on("ONCRMDEALUPDATE", fetch="crm.deal.get")
    def upsert(event, ctx):
        if handler is not None:
            handler()
        seen.append(event.object_id)

    def requeue(bodies, delay):
        if refuse:
            return set(range(len(bodies)))
        requeued.extend((json.loads(b), delay) for b in bodies)
        return set()

    worker = Worker(
        reg,
        load_portal=lambda m: PORTAL,
        make_client=lambda p: client,
        limiter=FakeLimiter(),
        requeue=requeue,
        wait=lambda s: None,
        retry_policy=policy,
    )
    return worker, seen, requeued


def failures(answer) -> list[str]:
    return sorted(f["itemIdentifier"] for f in answer["batchItemFailures"])


def test_a_portal_down_sends_its_events_back_delayed_with_an_attempt_count_instead_of_failing_them(
    frozen_clock,
):
    for error in (ServerError("502"), TransportError("timeout"), RefreshUnavailable("auth server down")):
        worker, seen, requeued = make(FakeClient(error=error))
        answer = worker({"Records": [record(1, "ONCRMDEALUPDATE", 7), record(2, "ONCRMDEALUPDATE", 8)]}, None)
        assert failures(answer) == []  # nothing counts towards the DLQ
        assert seen == []
        sent = [(m["data"]["FIELDS"]["ID"], m["attempt"], d) for m, d in requeued]
        assert sent == [("7", 1, 10), ("8", 1, 10)]
        assert all(m["failing_since"] == frozen_clock for m, _ in requeued)


def test_each_hop_waits_longer_and_the_chain_lasts_the_window_then_the_event_fails_towards_the_dlq():
    policy = RetryPolicy(window_s=HOURS_6, base_s=10)
    message, now, delays = QueuedEvent("ONCRMDEALUPDATE", "m1", "p"), 1_000_000, []
    while (hop := policy.next_hop(message, now)) is not None:
        message, delay = hop
        delays.append(delay)
        now += delay
    assert delays == sorted(delays) and max(delays) == MAX_DELAY_S  # growing, each within SQS's limit
    assert HOURS_6 <= sum(delays) < HOURS_6 + MAX_DELAY_S  # hours, not the ~2.5 min of N receives
    assert message.attempt == len(delays) < 40


def test_an_event_whose_window_is_spent_fails_like_before_and_reaches_the_dlq(frozen_clock):
    worker, _, requeued = make(FakeClient(error=ServerError("502")))
    rec = record(1, "ONCRMDEALUPDATE", 7)
    old = json.loads(rec["body"]) | {"attempt": 30, "failing_since": frozen_clock - int(HOURS_6) - 1}
    rec["body"] = json.dumps(old)
    assert failures(worker({"Records": [rec]}, None)) == ["msg-1"]
    assert requeued == []


def test_a_poison_event_still_fails_fast_while_the_portal_answers():
    # The portal answers; only this object's read fails (the simulator's poison deal): no hours of retry.
    class Poison(FakeClient):
        def batch(self, commands, halt=False):
            times = {k: {"start": 1.0, "finish": 1.0} for k in commands}
            errors = {k: {"error": "INTERNAL_SERVER_ERROR", "error_description": "boom"} for k in commands}
            return {"result": {}, "error": errors, "time": times}

    worker, seen, requeued = make(Poison())
    assert failures(worker({"Records": [record(1, "ONCRMDEALUPDATE", 7)]}, None)) == ["msg-1"]
    assert requeued == [] and seen == []


def test_a_handler_that_finds_the_portal_failing_is_retried_later_but_a_handler_bug_fails_fast():
    def portal_down():
        raise TransportError("connect timeout")

    worker, _, requeued = make(FakeClient(deals={"7": {"ID": "7"}}), handler=portal_down)
    assert failures(worker({"Records": [record(1, "ONCRMDEALUPDATE", 7)]}, None)) == []
    assert [m["attempt"] for m, _ in requeued] == [1]

    def bug():
        raise KeyError("TITLE")

    worker, _, requeued = make(FakeClient(deals={"7": {"ID": "7"}}), handler=bug)
    assert failures(worker({"Records": [record(1, "ONCRMDEALUPDATE", 7)]}, None)) == ["msg-1"]
    assert requeued == []


def test_an_event_the_queue_refuses_to_take_back_fails_and_is_not_lost():
    worker, _, _ = make(FakeClient(error=ServerError("502")), refuse=True)
    assert failures(worker({"Records": [record(1, "ONCRMDEALUPDATE", 7)]}, None)) == ["msg-1"]


def test_with_the_window_off_a_failing_portals_events_fail_as_before():
    worker, _, requeued = make(FakeClient(error=ServerError("502")), policy=RetryPolicy())
    assert failures(worker({"Records": [record(1, "ONCRMDEALUPDATE", 7)]}, None)) == ["msg-1"]
    assert requeued == []


def test_the_attempt_fields_are_optional_and_absent_from_a_first_attempts_message():
    first = QueuedEvent("ONCRMDEALUPDATE", "m1", "p")
    assert "attempt" not in json.loads(first.to_json())
    again = QueuedEvent.from_json(QueuedEvent("E", "m1", "p", attempt=3, failing_since=5).to_json())
    assert (again.attempt, again.failing_since) == (3, 5)


def test_a_redriven_event_starts_a_fresh_retry_window_and_keeps_everything_else():
    from b24core.worker.dlq import redrive

    class Sqs:
        def __init__(self, bodies):
            self.bodies, self.sent = list(bodies), []

        def receive_message(self, **kw):
            got, self.bodies = self.bodies, []
            msgs = [{"Body": b, "ReceiptHandle": str(i), "MessageId": str(i)} for i, b in enumerate(got)]
            return {"Messages": msgs}

        def send_message(self, QueueUrl, MessageBody, **kw):
            self.sent.append(MessageBody)

        def delete_message(self, **kw):
            pass

        def change_message_visibility(self, **kw):
            pass

    spent = QueuedEvent(
        "ONCRMDEALUPDATE", "m1", "p", data={"FIELDS": {"ID": "7"}}, attempt=30, failing_since=1
    )
    sqs = Sqs([spent.to_json(), "not json"])
    assert redrive(sqs, "dlq", "q").moved == 2
    back = QueuedEvent.from_json(sqs.sent[0])
    assert (back.attempt, back.failing_since) == (0, 0)
    assert back == replace(spent, attempt=0, failing_since=0)
    assert sqs.sent[1] == "not json"
