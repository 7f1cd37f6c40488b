"""Event verification and token stripping, with an in-memory store and sink."""

import json

import pytest

from b24core.aws.apigw import HttpError
from b24core.events.auth_cache import AuthCache, PortalAuth
from b24core.events.intake import EventIntake
from b24core.events.message import QueuedEvent
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.store import InMemoryPortalStore


class ListSink:
    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message)


class StoreReader:
    """Reads PortalAuth from an in-memory store and counts table reads."""

    def __init__(self, store):
        self.store, self.reads = store, 0

    def read(self, member_id):
        self.reads += 1
        p = self.store.get(member_id)
        return None if p is None else PortalAuth(member_id, p.state, p.application_token)


def setup():
    store = InMemoryPortalStore()
    store.save(
        Portal(
            member_id="m1",
            domain="p",
            client_endpoint="https://p/rest/",
            state=PortalState.ACTIVE,
            application_token="app-token-1",
            access_token="at-1",
            refresh_token="rt-1",
        )
    )
    sink = ListSink()
    intake = EventIntake(AuthCache(StoreReader(store)), sink)
    intake.store = store
    return intake, sink


def event(app_token="app-token-1", member_id="m1"):
    return {
        "event": "ONCRMDEALUPDATE",
        "data": {"FIELDS": {"ID": "5"}},
        "ts": "1",
        "auth": {
            "member_id": member_id,
            "application_token": app_token,
            "access_token": "user-at-1",
            "domain": "p",
            "refresh_token": "user-rt-1",
        },
    }


def test_verified_event_is_enqueued_without_any_token():
    intake, sink = setup()
    intake.accept(event())
    (message,) = sink.sent
    body = message.to_json()
    assert QueuedEvent.from_json(body).data == {"FIELDS": {"ID": "5"}}
    for secret in ("app-token-1", "user-at-1", "user-rt-1"):
        assert secret not in body
    assert "auth" not in json.loads(body)


@pytest.mark.parametrize(
    ("form", "status"),
    [
        (event(app_token="wrong"), 403),
        (event(app_token=""), 401),
        (event(member_id="unknown"), 401),
        ({"event": "ONCRMDEALUPDATE"}, 401),
        ({"auth": {"member_id": "m1"}}, 400),
    ],
)
def test_forged_or_incomplete_events_are_refused_and_not_enqueued(form, status):
    intake, sink = setup()
    with pytest.raises(HttpError) as err:
        intake.accept(form)
    assert err.value.status == status
    assert sink.sent == []


def test_uninstalled_portal_refuses_events():
    intake, sink = setup()
    p = intake.store.get("m1")
    intake.store.save(p.with_state(PortalState.DELETED))
    intake.portals.drop("m1")
    with pytest.raises(HttpError) as err:
        intake.accept(event())
    assert err.value.status == 403 and sink.sent == []


def test_steady_traffic_costs_no_table_read_per_event():
    intake, sink = setup()
    for _ in range(1000):
        intake.accept(event())
    assert len(sink.sent) == 1000
    assert intake.portals.reader.reads == 1


def test_a_rotated_application_token_is_reread_once_before_refusing():
    from dataclasses import replace

    intake, sink = setup()
    intake.accept(event())
    intake.store.save(replace(intake.store.get("m1"), application_token="app-token-2"))
    intake.accept(event(app_token="app-token-2"))
    assert len(sink.sent) == 2
    with pytest.raises(HttpError):
        intake.accept(event(app_token="app-token-1"))
