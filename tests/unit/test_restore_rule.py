"""The restore merge's rule on two portal records (b24core.portals.restore.merge_record): the newest
token fields win whichever table they are in, so a spent refresh token never comes back."""

from __future__ import annotations

from typing import Any

from b24core.portals.restore import is_transient, merge_record


def record(refresh: str, refreshed_at: int, version: int, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": "PORTAL#m1"},
        "sk": {"S": "PORTAL"},
        "member_id": {"S": "m1"},
        "domain": {"S": "m1.example.com"},
        "client_endpoint": {"S": "https://m1.example.com/rest/"},
        "state": {"S": "active"},
        "token_state": {"S": "active"},
        "refresh_token": {"S": refresh},
        "refreshed_at": {"N": str(refreshed_at)},
        "installed_at": {"N": "100"},
        "updated_at": {"N": str(refreshed_at)},
        "version": {"N": str(version)},
        "capabilities": {"S": '{"kept": "from INTO"}'},
    }
    for key, value in extra.items():
        item[key] = {"N": str(value)} if isinstance(value, int) else {"S": value}
    return item


def test_an_older_pair_never_replaces_a_newer_one_even_with_a_higher_version():
    newer = record("sealed-new", refreshed_at=2000, version=3)
    older = record("sealed-old", refreshed_at=1000, version=9)  # e.g. a record re-created after a loss
    assert merge_record(older, newer) is None


def test_a_newer_pair_is_taken_with_its_state_and_into_keeps_the_rest():
    into = record(
        "sealed-old", refreshed_at=1000, version=4, token_state="reauth_required", token_state_at=1500
    )
    source = record("sealed-new", refreshed_at=2000, version=2, token_state_reason="refreshed")
    source["capabilities"] = {"S": '{"other": "from FROM"}'}
    merged = merge_record(source, into)
    assert merged is not None
    assert merged["refresh_token"] == {"S": "sealed-new"}
    assert merged["token_state"] == {"S": "active"} and merged["token_state_reason"] == {"S": "refreshed"}
    assert "token_state_at" not in merged  # the whole group moves: nothing of INTO's older state stays
    assert merged["capabilities"] == {"S": '{"kept": "from INTO"}'}
    assert merged["version"] == {"N": "5"}  # past both, so the next merge either way sees it newest
    assert merged["gsi1pk"] == {"S": "REFRESH"}  # found by the keep-alive sweep again


def test_an_uninstall_after_the_snapshot_wins_over_the_same_pair():
    active = record("sealed-1", refreshed_at=1000, version=2)
    uninstalled = record("", refreshed_at=1000, version=3, state="deleted", token_state="uninstalled")
    uninstalled["updated_at"] = {"N": "3000"}
    del uninstalled["refresh_token"]
    assert merge_record(active, uninstalled) is None  # restored active record into live: stays deleted
    merged = merge_record(uninstalled, active)  # live's uninstall into the restored table
    assert merged is not None and merged["state"] == {"S": "deleted"} and "refresh_token" not in merged
    assert merged["gsi1pk"] == {"S": "GONE"}


def test_a_reinstall_after_an_uninstall_wins_with_its_new_pair():
    uninstalled = record("", refreshed_at=1000, version=3, state="deleted", token_state="uninstalled")
    uninstalled["updated_at"] = {"N": "3000"}
    reinstalled = record("sealed-2", refreshed_at=4000, version=1)
    merged = merge_record(reinstalled, uninstalled)
    assert merged is not None and merged["refresh_token"] == {"S": "sealed-2"}
    assert merged["state"] == {"S": "active"}


def test_same_token_fields_write_nothing():
    a = record("sealed-1", refreshed_at=1000, version=2)
    b = record("sealed-1", refreshed_at=1000, version=7)
    assert merge_record(b, a) is None and merge_record(a, b) is None


def test_leases_and_idempotency_records_are_never_brought_back():
    assert is_transient({"pk": {"S": "PORTAL#m1"}, "sk": {"S": "LEASE#refresh"}})
    assert is_transient({"pk": {"S": "SWEEP"}, "sk": {"S": "LEASE#sweep"}})
    assert is_transient({"pk": {"S": "IDEMPOTENCY#event_worker"}, "sk": {"S": "x"}})
    assert not is_transient({"pk": {"S": "PORTAL#m1"}, "sk": {"S": "DELIVERY"}})
