"""Portal records a newer release wrote: read without crashing, acted on by nothing, never overwritten."""

from __future__ import annotations

from dataclasses import replace

import pytest

from b24core.events.auth_cache import DynamoAuthReader
from b24core.portals.model import Portal
from b24core.portals.schema import ITEM_SCHEMA, NewerItem
from b24core.portals.sealing import PlainCodec
from b24core.portals.states import PortalState, TokenState
from b24core.portals.store import _portal_model, _to_portal
from b24core.tokens.outcomes import Outcome, RefreshReason
from tests.unit._token_fakes import NOW, make_keeper, make_portal
from tests.unit.test_worker import FakeClient, make, record


def stored(**attrs: object):
    model = _portal_model("t", "us-east-1", None)
    base = {
        "member_id": "m1",
        "domain": "p.example.com",
        "client_endpoint": "https://p.example.com/rest/",
        "state": "active",
        "token_state": "active",
        "version": 3,
    }
    return model("PORTAL#m1", "PORTAL", **{**base, **attrs})


def test_a_token_state_this_release_lacks_reads_as_a_stand_in_and_says_why():
    portal = _to_portal(stored(token_state="frozen_by_policy", schema=ITEM_SCHEMA + 1), PlainCodec())
    assert portal.token_state == TokenState.REAUTH_REQUIRED  # nothing refreshes it
    assert portal.state == PortalState.ACTIVE
    assert "token_state=frozen_by_policy" in portal.newer_release
    assert f"schema={ITEM_SCHEMA + 1}" in portal.newer_release
    assert portal.public_view()["newer_release"] == portal.newer_release


def test_an_unknown_portal_state_is_not_active():
    portal = _to_portal(stored(state="suspended"), PlainCodec())
    assert portal.state == PortalState.BLOCKED and portal.newer_release == "state=suspended"


@pytest.mark.parametrize("schema", [None, 0, ITEM_SCHEMA])
def test_records_of_this_or_older_schemas_are_plain_records(schema):
    portal = _to_portal(stored(schema=schema), PlainCodec())
    assert portal.newer_release == "" and "newer_release" not in portal.public_view()


def test_this_release_writes_its_schema():
    from b24core.portals.store import DynamoPortalStore

    store = DynamoPortalStore("t", "us-east-1")
    item = store._item(Portal("m1", "p", "https://p/rest/"))
    assert item.schema == ITEM_SCHEMA


def test_a_newer_record_is_never_saved_over():
    keeper, store, auth, clock, _ = make_keeper()
    newer = replace(make_portal(auth), newer_release="token_state=frozen_by_policy")
    with pytest.raises(NewerItem):
        store.save(newer)
    from b24core.portals.store import DynamoPortalStore

    with pytest.raises(NewerItem):  # refused before any request: no table is needed to prove it
        DynamoPortalStore("no-such-table", "us-east-1", host="http://127.0.0.1:9").save(newer)


def test_a_newer_record_is_not_refreshed_so_its_refresh_token_is_not_burned():
    keeper, store, auth, clock, _ = make_keeper()
    portal = make_portal(auth, refreshed_at=NOW - 40 * 24 * 3600)
    store._items[portal.member_id] = replace(portal, newer_release="schema=2")  # as a newer release left it
    result = keeper.attempt(store.get(portal.member_id), RefreshReason.KEEPALIVE)
    assert result.outcome == Outcome.BUSY
    assert auth.refreshes == []


def test_events_of_a_newer_record_wait_for_a_newer_worker_instead_of_being_dropped():
    worker, seen, requeued = make(FakeClient({"1": {"ID": "1"}}))
    worker.load_portal = lambda m: Portal(
        "m1", "p", "https://p/rest/", state=PortalState.BLOCKED, newer_release="state=suspended"
    )
    out = worker({"Records": [record(1, "ONCRMDEALUPDATE", 1)]}, None)
    assert out["batchItemFailures"] == [{"itemIdentifier": "msg-1"}]  # retried, then the DLQ
    assert seen == [] and requeued == []


class _Client:
    def __init__(self, state: str) -> None:
        self.state = state

    def get_item(self, **_: object) -> dict:
        return {"Item": {"state": {"S": self.state}, "application_token": {"S": "h"}}}


def test_intake_reads_an_unknown_state_as_not_deleted_so_its_events_are_taken():
    auth = DynamoAuthReader(_Client("suspended"), "t").read("m1")
    assert auth is not None and auth.state != PortalState.DELETED
