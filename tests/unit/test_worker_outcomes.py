"""The worker's own metrics (what became of each event of a batch) and each portal's health times."""

from __future__ import annotations

from b24core.aws.metrics import record_metrics
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.worker.dispatch import Worker
from b24core.worker.handlers import Registry
from b24core.worker.health import InMemoryPortalHealth, PortalHealth
from tests.unit.test_worker import PORTAL, FakeClient, FakeLimiter, make, record


def _worker(client, health=None, limiter=None, load_portal=None):
    reg = Registry()

    @reg.on("ONCRMDEALUPDATE", fetch="crm.deal.get")
    def upsert(event, ctx):
        if event.object_id == "2":
            raise ValueError("handler bug")

    return Worker(
        reg,
        load_portal=load_portal or (lambda m: PORTAL),
        make_client=lambda p: client,
        limiter=limiter or FakeLimiter(),
        requeue=lambda bodies, d: set(),
        max_wait_s=1.0,
        wait=lambda s: None,
        health=health,
    )


def test_a_batch_counts_each_event_once_as_handled_skipped_dropped_or_failed_by_reason():
    worker = _worker(FakeClient({"1": {"ID": "1"}, "2": {"ID": "2"}}))
    bad = record(9, "ONCRMDEALUPDATE", 9)
    bad["body"] = "not json"
    records = [
        record(1, "ONCRMDEALUPDATE", 1),  # coalesced into the next one
        record(2, "ONCRMDEALUPDATE", 1),  # handled
        record(3, "ONCRMDEALUPDATE", 2),  # its handler raises: failed
        record(4, "ONCRMDEALUPDATE", 5),  # deal 5 is gone: skipped
        record(5, "ONCRMLEADADD", 5),  # nobody handles it
        bad,  # unreadable: failed for the DLQ, never deleted
    ]
    with record_metrics() as seen:
        out = worker({"Records": records}, None)
    assert sorted(f["itemIdentifier"] for f in out["batchItemFailures"]) == ["msg-3", "msg-9"]
    assert seen.total("EventsReceived") == 6
    assert seen.total("EventsHandled") == 1
    assert seen.total("EventsSkipped", reason="coalesced") == 1
    assert seen.total("EventsSkipped", reason="object_gone") == 1
    assert seen.total("EventsSkipped", reason="no_handler") == 1
    assert seen.total("EventsDropped") == 0
    assert seen.total("EventsFailed", reason="malformed") == 1
    assert seen.total("EventsFailed", reason="handler_error") == 1
    # The alarm's numerator: the same failures once more without a reason, nothing else counted twice.
    assert seen.counts[("EventsFailed", ())] == 2
    assert seen.total("EventsDeferred") == 0


def test_events_sent_back_for_a_spent_budget_count_as_deferred_not_failed_or_handled():
    # A full request's worth (a part-filled one would be held for company while the budget is busy).
    client = FakeClient({str(i): {"ID": str(i)} for i in range(1, 51)})
    worker, _seen, requeued = make(client, limiter=FakeLimiter(budget=0))
    with record_metrics() as seen:
        worker({"Records": [record(i, "ONCRMDEALUPDATE", i) for i in range(1, 51)]}, None)
    assert len(requeued) == 50
    assert seen.total("EventsDeferred", reason="budget") == 50
    assert seen.total("EventsHandled") == 0 and seen.total("EventsFailed") == 0


def test_a_portal_whose_reads_break_counts_its_events_as_failed_not_prepared():
    worker = _worker(FakeClient(error=RuntimeError("portal answered garbage")))
    with record_metrics() as seen:
        out = worker({"Records": [record(1, "ONCRMDEALUPDATE", 1)]}, None)
    assert out["batchItemFailures"] == [{"itemIdentifier": "msg-1"}]
    assert seen.total("EventsFailed", reason="not_prepared") == 1


def test_events_of_an_uninstalled_portal_are_dropped_with_their_reason():
    gone = Portal(member_id="m1", domain="p", client_endpoint="https://p/rest/", state=PortalState.DELETED)
    worker = _worker(FakeClient({}), load_portal=lambda m: gone)
    with record_metrics() as seen:
        worker({"Records": [record(1, "ONCRMDEALUPDATE", 1)]}, None)
    assert seen.total("EventsDropped", reason="portal_not_active") == 1


def test_each_portal_gets_its_newest_finished_events_intake_time_once_per_batch():
    health = InMemoryPortalHealth()
    worker = _worker(FakeClient({"1": {"ID": "1"}, "2": {"ID": "2"}, "3": {"ID": "3"}}), health=health)
    worker(
        {
            "Records": [
                record(100, "ONCRMDEALUPDATE", 1),
                record(300, "ONCRMDEALUPDATE", 2),  # failed: not processed, its time is not taken
                record(200, "ONCRMDEALUPDATE", 3, member_id="m2"),
            ]
        },
        None,
    )
    assert health.items["m1"].last_received_at == 100
    assert health.items["m2"].last_received_at == 200
    assert health.items["m1"].last_processed_at > 0


class _Dynamo:
    def __init__(self, fail=False):
        self.updates: list[dict] = []
        self.fail = fail

    def update_item(self, **kw):
        if self.fail:
            raise RuntimeError("throttled")
        self.updates.append(kw)


def test_a_warm_worker_writes_a_portals_health_at_most_once_a_minute():
    now = [1000.0]
    dynamo = _Dynamo()
    store = PortalHealth(dynamo, "t", clock=lambda: now[0])
    assert store.record({"m1": 990, "m2": 995}) == 2
    now[0] += 30
    assert store.record({"m1": 1020}) == 0  # within the minute: no write
    now[0] += 31
    assert store.record({"m1": 1050}) == 1
    assert [u["Key"]["pk"]["S"] for u in dynamo.updates] == ["PORTAL#m1", "PORTAL#m2", "PORTAL#m1"]
    assert dynamo.updates[-1]["ExpressionAttributeValues"][":r"] == {"N": "1050"}


def test_a_failed_health_write_never_fails_the_batch_and_is_tried_again_next_batch():
    dynamo = _Dynamo(fail=True)
    store = PortalHealth(dynamo, "t", clock=lambda: 1000.0)
    assert store.record({"m1": 990}) == 0
    dynamo.fail = False
    assert store.record({"m1": 990}) == 1


def test_an_event_failing_its_last_receive_is_counted_and_logged_as_dead_lettered(caplog):
    from b24core.worker.outcomes import MAX_RECEIVES

    worker = _worker(FakeClient({"2": {"ID": "2"}}))
    last = record(3, "ONCRMDEALUPDATE", 2)
    last["attributes"] = {"ApproximateReceiveCount": str(MAX_RECEIVES)}
    earlier = record(4, "ONCRMDEALUPDATE", 2, member_id="m2")
    earlier["attributes"] = {"ApproximateReceiveCount": "1"}
    with record_metrics() as seen, caplog.at_level("WARNING"):
        out = worker({"Records": [last, earlier]}, None)
    assert len(out["batchItemFailures"]) == 2
    assert seen.total("EventsDeadLettered") == 1  # only the one on its last receive
    dead = [r for r in caplog.records if getattr(r, "outcome", None) == "dead_lettered"]
    assert [(r.member_id, r.event) for r in dead] == [("m1", "ONCRMDEALUPDATE")]
    failed = [r for r in caplog.records if getattr(r, "outcome", None) == "failed"]
    assert {r.reason for r in failed} == {"ValueError"}  # the handler's error type, never its text


def _emf(out: str) -> list[tuple[str, list[str]]]:
    import json

    lines = [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]
    return [
        # "service" comes from POWERTOOLS_SERVICE_NAME (template.yaml's Globals), unset in unit tests
        (
            m["Name"],
            sorted(
                d for ds in doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] for d in ds if d != "service"
            ),
        )
        for doc in lines
        for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    ]


def test_an_event_the_queue_did_not_take_counts_as_not_stored_with_and_without_its_reason(
    monkeypatch, capsys
):
    import json
    from pathlib import Path

    from b24core.events import http
    from b24core.events.sqs import EnqueueFailed

    class Intake:
        def accept(self, form):
            raise EnqueueFailed("queue down")

    monkeypatch.setattr(http, "_intake", lambda: Intake())
    sample = json.loads((Path(__file__).parents[2] / "events/events_oncrmdealupdate.json").read_text())
    answer = http.handle_event(sample)
    assert answer["statusCode"] == 503
    assert _emf(capsys.readouterr().out) == [
        ("EventsNotStored", ["reason"]),
        ("EventsNotStored", []),  # what EventsNotStoredAlarm watches
    ]


def test_a_5xx_answer_at_intake_counts_as_not_stored_and_a_4xx_as_rejected(monkeypatch, capsys):
    from b24core.aws.apigw import HttpError
    from b24core.events import http

    http._count("EventsRejected", "application_token_mismatch")
    assert _emf(capsys.readouterr().out) == [("EventsRejected", ["reason"])]

    class Intake:
        def accept(self, form):
            raise HttpError(503, "delivery_not_recorded", "try again")

    import json
    from pathlib import Path

    monkeypatch.setattr(http, "_intake", lambda: Intake())
    sample = json.loads((Path(__file__).parents[2] / "events/events_oncrmdealupdate.json").read_text())
    assert http.handle_event(sample)["statusCode"] == 503
    assert [name for name, _ in _emf(capsys.readouterr().out)] == ["EventsNotStored", "EventsNotStored"]


class _Dlq:
    """SQS's DLQ in memory: receive hides messages until their visibility is given back."""

    def __init__(self, members):
        import json

        self.msgs = {
            f"id{i}": json.dumps({"v": 1, "event": "ONCRMDEALADD", "member_id": m, "domain": "d"})
            for i, m in enumerate(members)
        }
        self.hidden: set[str] = set()

    def receive_message(self, QueueUrl, MaxNumberOfMessages, **kw):
        free = [k for k in self.msgs if k not in self.hidden][:MaxNumberOfMessages]
        self.hidden.update(free)
        return {"Messages": [{"MessageId": k, "ReceiptHandle": k, "Body": self.msgs[k]} for k in free]}

    def change_message_visibility(self, QueueUrl, ReceiptHandle, VisibilityTimeout):
        self.hidden.discard(ReceiptHandle)

    def get_queue_attributes(self, QueueUrl, AttributeNames):
        return {"Attributes": {"ApproximateNumberOfMessages": str(len(self.msgs) - len(self.hidden))}}


def test_a_portals_dlq_count_looks_at_a_bounded_number_of_messages_says_when_capped_and_hides_none():
    from b24core.worker.dlq import count_for_portal

    dlq = _Dlq(["m1", "m2", "m1"] * 10)
    whole = count_for_portal(dlq, "url", "m1", limit=100)
    assert (whole.portal, whole.scanned, whole.capped) == (20, 30, False)
    assert dlq.hidden == set()  # every message looked at is visible again
    capped = count_for_portal(dlq, "url", "m1", limit=12)
    assert (capped.portal, capped.scanned, capped.capped) == (8, 12, True)
    assert dlq.hidden == set()
