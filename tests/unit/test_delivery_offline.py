"""Pull mode: offline bindings follow the mode; records reach SQS before the portal lets them go."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from b24core.aws.settings import DeliveryPolicy
from b24core.bitrix.errors import QueryLimitExceeded
from b24core.capabilities.manifest import load_manifest
from b24core.delivery.modes import DeliveryMode
from b24core.delivery.offline import OfflinePuller, to_message
from b24core.delivery.offline_bind import feature_events
from b24core.delivery.store import DeliveryState, InMemoryDeliveryStore, mutate
from b24core.events.message import QueuedEvent
from b24core.events.queue_writer import QueueWriter
from b24core.portals.keys import portal_pk
from b24core.tokens.lease import InMemoryLeaseStore, LeaseKey
from tests.unit.delivery_fakes import PORTAL, Crash, FakePortal, FakeSqs

EVENTS = ["ONCRMDEALADD", "ONCRMDEALDELETE", "ONCRMDEALUPDATE"]
URL = "https://app.example.com/events"


def puller(store, sqs, batch=50, leases=None):
    return OfflinePuller(
        store,
        leases or InMemoryLeaseStore(),
        QueueWriter(sqs, "queue-url", attempts=3, sleep=lambda s: None),
        DeliveryPolicy(pull_batch_size=batch),
    )


def in_pull_mode(store, **changes):
    return mutate(
        store, "m1", lambda s: replace(s, mode=DeliveryMode.PULL, events_url=URL, blocked_since=1, **changes)
    )


def bound_portal(store, sqs, **kw) -> FakePortal:
    portal = FakePortal(**kw)
    in_pull_mode(store)
    puller(store, sqs).run(portal, PORTAL, EVENTS)
    return portal


def test_pull_mode_binds_feature_events_offline_with_the_apps_connector_and_onofflineevent():
    store, sqs = InMemoryDeliveryStore(), FakeSqs()
    portal = bound_portal(store, sqs)
    offline = [b for b in portal.bindings if b["offline"]]
    assert sorted(b["event"] for b in offline) == EVENTS
    assert {b["auth_connector"] for b in offline} == {"b24app"}
    wake = [b for b in portal.bindings if b["event"] == "ONOFFLINEEVENT"]
    assert wake and not wake[0]["offline"] and wake[0]["handler"] == URL
    assert wake[0]["options"] == {"minTimeout": 5}
    state = store.get("m1")
    assert state.offline_bound and list(state.offline_events) == EVENTS


def test_offline_bindings_need_an_admin_and_say_so():
    store, sqs = InMemoryDeliveryStore(), FakeSqs()
    portal = FakePortal(admin=False)
    in_pull_mode(store)
    puller(store, sqs).run(portal, PORTAL, EVENTS)
    state = store.get("m1")
    assert not state.offline_bound and "administrator" in state.bind_error
    assert not [b for b in portal.bindings if b["offline"]]
    portal.calls.clear()
    result = puller(store, sqs).run(portal, PORTAL, EVENTS)  # the next minute: not asked again yet
    assert result.outcome == "unbound" and portal.calls == []


def test_feature_events_skip_features_known_missing():
    events = feature_events(load_manifest(), PORTAL.capabilities)
    assert set(EVENTS) <= set(events)
    assert "ONEXTERNALCALLSTART" not in events  # telephony is missing on this box


def test_every_change_reaches_sqs_and_the_portal_clears_only_what_sqs_accepted():
    store, sqs = InMemoryDeliveryStore(), FakeSqs(refuse=0.3)
    portal = bound_portal(store, sqs)
    for deal in range(1, 121):
        portal.change("ONCRMDEALUPDATE", deal)
    accepted_ids: set[str] = set()
    original = sqs.send_message_batch

    def spy(QueueUrl, Entries):
        answer = original(QueueUrl, Entries)
        accepted_ids.update(json.loads(e["MessageBody"])["event_handler_id"] for e in Entries)
        return answer

    sqs.send_message_batch = spy  # type: ignore[method-assign]
    for _ in range(6):  # a few scheduled runs: refused records come back as errors and are retried
        puller(store, sqs).run(portal, PORTAL, EVENTS)
        if not portal.records:
            break
    assert portal.records == []
    assert sorted(int(d) for _, d in set(sqs.objects())) == list(range(1, 121))  # none lost
    cleared = [i for ids in portal.cleared_log for i in ids]
    assert len(cleared) == len(set(cleared)) == 120
    state = store.get("m1")
    assert state.pending == () and not state.errors_marked and not state.run_open


def test_sqs_down_marks_records_with_offline_error_and_removes_none():
    store, sqs = InMemoryDeliveryStore(), FakeSqs(down=True)
    portal = bound_portal(store, sqs)
    for deal in range(1, 6):
        portal.change("ONCRMDEALADD", deal)
    result = puller(store, sqs).run(portal, PORTAL, EVENTS)
    assert result.enqueued == 0 and result.refused == 5
    assert len(portal.records) == 5 and all(r.error for r in portal.records)  # kept on the portal
    assert store.get("m1").errors_marked
    sqs.down = False
    puller(store, sqs).run(portal, PORTAL, EVENTS)  # the next run retries them (error=1)
    assert portal.records == [] and len(sqs.bodies) == 5
    assert not store.get("m1").errors_marked


def test_a_run_that_dies_after_sqs_before_the_clear_resends_the_same_messages():
    store, sqs = InMemoryDeliveryStore(), FakeSqs()
    portal = bound_portal(store, sqs)
    for deal in range(1, 4):
        portal.change("ONCRMDEALUPDATE", deal)
    portal.crash_on["event.offline.clear"] = 1
    with pytest.raises(Crash):
        puller(store, sqs).run(portal, PORTAL, EVENTS)
    first = list(sqs.bodies)
    assert len(first) == 3 and len(portal.records) == 3  # in SQS, still on the portal, reserved
    assert len(store.get("m1").pending) == 1
    puller(store, sqs, leases=InMemoryLeaseStore()).run(portal, PORTAL, EVENTS)
    assert portal.records == []
    assert sorted(sqs.bodies[3:]) == sorted(first)  # identical bodies: the worker's idempotency key


def test_a_run_that_dies_between_get_and_remembering_the_process_id_is_taken_over():
    store, sqs = InMemoryDeliveryStore(), FakeSqs()
    portal = bound_portal(store, sqs)
    for deal in range(1, 4):
        portal.change("ONCRMDEALADD", deal)
    real = store.save
    calls = {"n": 0}

    def dying_save(state):
        if state.pending and not calls["n"]:
            calls["n"] += 1
            raise Crash("died before the process_id was saved")
        return real(state)

    store.save = dying_save  # type: ignore[method-assign]
    with pytest.raises(Crash):
        puller(store, sqs).run(portal, PORTAL, EVENTS)
    assert all(r.process_id for r in portal.records) and sqs.bodies == []  # orphaned reservation
    assert store.get("m1").run_open
    puller(store, sqs, leases=InMemoryLeaseStore()).run(portal, PORTAL, EVENTS)
    assert portal.records == [] and len(sqs.bodies) == 3
    assert "event.offline.list" in portal.calls


def test_a_spent_budget_ends_the_run_and_keeps_what_is_reserved():
    store, sqs = InMemoryDeliveryStore(), FakeSqs()
    portal = bound_portal(store, sqs)
    for deal in range(1, 8):
        portal.change("ONCRMDEALADD", deal)
    portal.raise_on["batch"] = QueryLimitExceeded("budget spent")
    result = puller(store, sqs, batch=3).run(portal, PORTAL, EVENTS)
    assert result.outcome == "budget"
    assert len(portal.records) == 7 and sqs.bodies == []
    del portal.raise_on["batch"]
    puller(store, sqs, batch=3).run(portal, PORTAL, EVENTS)
    assert portal.records == [] and len(sqs.bodies) == 7


def test_one_pull_per_portal_at_a_time():
    store, sqs = InMemoryDeliveryStore(), FakeSqs()
    leases = InMemoryLeaseStore()
    portal = bound_portal(store, sqs)
    portal.change("ONCRMDEALADD", 1)
    assert leases.acquire(LeaseKey(portal_pk("m1"), "LEASE#pull"), "someone-else", 60, time.time())
    result = puller(store, sqs, leases=leases).run(portal, PORTAL, EVENTS)
    assert result.outcome == "busy" and sqs.bodies == [] and len(portal.records) == 1


def test_a_round_costs_one_request_settling_the_previous_round_with_the_next_get():
    store, sqs = InMemoryDeliveryStore(), FakeSqs()
    portal = bound_portal(store, sqs)
    for deal in range(1, 101):
        portal.change("ONCRMDEALADD", deal)
    portal.calls.clear()
    result = puller(store, sqs, batch=50).run(portal, PORTAL, EVENTS)
    assert result.enqueued == 100
    assert portal.calls.count("batch") == 3  # get; clear+get; clear+get (empty)
    assert portal.calls.count("event.offline.clear") == 2


def test_back_online_removes_offline_bindings_first_then_drains_the_queue():
    store, sqs = InMemoryDeliveryStore(), FakeSqs()
    portal = bound_portal(store, sqs)
    portal.change("ONCRMDEALUPDATE", 7)
    mutate(store, "m1", lambda s: replace(s, mode=DeliveryMode.ONLINE, blocked_since=0))
    puller(store, sqs).run(portal, PORTAL, EVENTS)
    assert not [b for b in portal.bindings if b["offline"] or b["event"] == "ONOFFLINEEVENT"]
    assert portal.records == [] and len(sqs.bodies) == 1
    state = store.get("m1")
    assert not state.offline_bound and not state.draining and not state.has_offline_work


def test_an_offline_record_becomes_the_workers_message_without_anything_else():
    row = {
        "ID": "9",
        "TIMESTAMP_X": "2026-01-01T10:00:00+00:00",
        "EVENT_NAME": "ONCRMDEALUPDATE",
        "EVENT_DATA": {"FIELDS": {"ID": "42"}},
        "MESSAGE_ID": "abc",
    }
    message = to_message(PORTAL, row)
    back = QueuedEvent.from_json(message.to_json())
    assert back.source == "offline" and back.event == "ONCRMDEALUPDATE"
    assert back.member_id == "m1" and back.data == {"FIELDS": {"ID": "42"}}
    assert to_message(PORTAL, row).to_json() == message.to_json()  # stable: same record, same body


def test_online_portals_have_no_offline_work_and_are_left_alone():
    store, sqs = InMemoryDeliveryStore(), FakeSqs()
    portal = FakePortal()
    mutate(store, "m1", lambda s: replace(s, events_url=URL))
    result = puller(store, sqs).run(portal, PORTAL, EVENTS)
    assert result.outcome == "idle" and portal.calls == []
    assert DeliveryState("m1").index_keys()[0] == "DELIVERY#online"
