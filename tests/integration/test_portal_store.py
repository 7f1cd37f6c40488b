"""The DynamoDB portal store against DynamoDB Local with the table from template.yaml."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from b24core.portals.app_data import DynamoAppStorage
from b24core.portals.model import REFRESH_KEEPALIVE_S, Portal
from b24core.portals.states import PortalState, TokenState
from b24core.portals.store import DynamoPortalStore
from b24core.portals.versioned import StaleWrite


@pytest.fixture
def store(services) -> DynamoPortalStore:
    return DynamoPortalStore(services.resources["AppTable"], services.region, services.dynamodb_endpoint)


def portal(member_id: str, **over) -> Portal:
    now = int(time.time())
    base = Portal(
        member_id=member_id,
        domain=f"{member_id[:8]}.example.com",
        client_endpoint=f"https://{member_id[:8]}.example.com/rest/",
        state=PortalState.ACTIVE,
        access_token="at-" + member_id,
        refresh_token="rt-" + member_id,
        application_token="app-" + member_id,
        installed_at=now,
        refreshed_at=now,
    )
    return replace(base, **over)


def test_round_trip_keeps_every_field(store, member_id):
    saved = store.save(portal(member_id, capabilities={"features": {"crm": {"available": True}}}))
    loaded = store.get(member_id)
    assert loaded == saved
    assert loaded.version == 1


def test_stale_write_is_refused_so_tokens_are_never_overwritten_blindly(store, member_id):
    first = store.save(portal(member_id))
    store.save(replace(first, access_token="newer"))
    with pytest.raises(StaleWrite):
        store.save(replace(first, access_token="older"))
    assert store.get(member_id).access_token == "newer"


def test_creating_twice_is_a_stale_write(store, member_id):
    store.save(portal(member_id))
    with pytest.raises(StaleWrite):
        store.save(portal(member_id))


def test_refresh_index_lists_only_due_portals(store):
    now = int(time.time())
    old = uuid_like("old")
    fresh = uuid_like("fresh")
    lost = uuid_like("lost")
    store.save(portal(old, refreshed_at=now - REFRESH_KEEPALIVE_S - 60))
    store.save(portal(fresh, refreshed_at=now))
    store.save(
        portal(lost, refreshed_at=now - REFRESH_KEEPALIVE_S - 60, token_state=TokenState.REAUTH_REQUIRED)
    )
    due = {p.member_id for p in store.due_for_refresh(now)}
    assert old in due
    assert fresh not in due and lost not in due


def test_app_storage_keeps_each_portals_items_apart_and_lists_a_prefix(services, member_id):
    db, table = services.client("dynamodb"), services.resources["AppTable"]
    mine, other = DynamoAppStorage(db, table, member_id), DynamoAppStorage(db, table, member_id + "x")
    mine.put("deal/7", {"TITLE": "Deal", "n": 1.5, "tags": ["a"]})
    for i in range(3):
        mine.put(f"deal/7/history/{i}", {"i": i})
    assert mine.get("deal/7") == {"TITLE": "Deal", "n": 1.5, "tags": ["a"]}
    assert other.get("deal/7") is None and list(other.items()) == []
    assert [v["i"] for _, v in mine.items("deal/7/history/")] == [0, 1, 2]
    mine.delete("deal/7")
    assert mine.get("deal/7") is None
    with pytest.raises(ValueError):
        mine.put("", {"x": 1})


def uuid_like(prefix: str) -> str:
    import uuid

    return f"{prefix}-{uuid.uuid4().hex}"
