"""Queue messages across releases: a newer version is failed for the DLQ (never deleted), an older known
one and one with fields a newer release added are read, and those fields survive being sent back."""

from __future__ import annotations

import json

import pytest

from b24core.events.message import MESSAGE_VERSION, QueuedEvent, UnknownVersion
from tests.unit.test_worker import FakeClient, make, record


def with_body(rec: dict, **changes: object) -> dict:
    body = json.loads(rec["body"])
    body.update(changes)
    return {**rec, "body": json.dumps(body)}


def test_a_message_of_the_next_version_is_failed_so_sqs_takes_it_to_the_dlq():
    worker, seen, requeued = make(FakeClient({"1": {"ID": "1"}, "2": {"ID": "2"}}))
    newer = with_body(record(1, "ONCRMDEALUPDATE", 1), v=MESSAGE_VERSION + 1, shape="new")
    out = worker({"Records": [newer, record(2, "ONCRMDEALUPDATE", 2)]}, None)
    # Reported as a batch item failure: SQS redelivers it (maybe to a newer worker during a canary) and
    # moves it to EventsDLQ after maxReceiveCount. Deleting it (no failure) would lose the event.
    assert out["batchItemFailures"] == [{"itemIdentifier": "msg-1"}]
    assert seen == [("ONCRMDEALUPDATE", "2", {"ID": "2"})]
    assert requeued == []  # not re-sent as a fresh message either (that would dodge the DLQ forever)


@pytest.mark.parametrize("version", [MESSAGE_VERSION + 1, 0, "1", None, True, [1]])
def test_only_known_versions_are_read(version):
    body = json.loads(QueuedEvent(event="ONCRMDEALADD", member_id="m", domain="d").to_json())
    body["v"] = version
    with pytest.raises(UnknownVersion):
        QueuedEvent.from_json(json.dumps(body))


def test_a_message_without_a_version_is_not_an_event():
    with pytest.raises(ValueError):
        QueuedEvent.from_json(json.dumps({"event": "ONCRMDEALADD", "member_id": "m"}))


def test_a_known_version_with_fields_a_newer_release_added_is_read_and_keeps_them():
    worker, seen, _ = make(FakeClient({"1": {"ID": "1"}}))
    rec = with_body(record(1, "ONCRMDEALUPDATE", 1), priority="high", trace={"id": "t-1"})
    out = worker({"Records": [rec]}, None)
    assert out["batchItemFailures"] == []
    assert seen == [("ONCRMDEALUPDATE", "1", {"ID": "1"})]
    message = QueuedEvent.from_json(rec["body"])
    again = json.loads(message.to_json())  # as the worker sends it back when it defers it
    assert again["priority"] == "high" and again["trace"] == {"id": "t-1"}
    assert again["v"] == MESSAGE_VERSION and again["event"] == "ONCRMDEALUPDATE"


def test_an_added_field_cannot_override_a_known_one_when_sent_back():
    message = QueuedEvent(event="ONCRMDEALADD", member_id="m", domain="d", extra={"member_id": "other"})
    assert json.loads(message.to_json())["member_id"] == "m"
