"""``b24app restore merge`` against DynamoDB Local: after a point-in-time restore, lost items come back
and no spent refresh token ever does (docs/restore.md).

Two tables shaped like template.yaml's AppTable: the live one, and a "restored" copy of it made at
time T (what PITR makes). After T the live table moves on: refreshes, a loss, an uninstall, an install.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from typing import Any

import boto3
import pytest

from b24cli.main import main
from b24core.capabilities.store import DynamoCapabilityStore
from b24core.portals.app_data import DynamoAppStorage
from b24core.portals.model import Portal
from b24core.portals.sealing import KmsCodec, LocalKeyClient
from b24core.portals.states import PortalState, TokenState
from b24core.portals.store import DynamoPortalStore
from b24core.tokens.pairs import with_pair
from b24core.trust.uninstall import mark_uninstalled

T = int(time.time()) - 10_000  # the restore's point in time
KEY = LocalKeyClient()  # tokens are sealed as in AWS; the merge must never need (or print) them


@pytest.fixture
def db(services) -> Any:
    return boto3.client("dynamodb", region_name=services.region, endpoint_url=services.dynamodb_endpoint)


def _table_like_app_table(db: Any, services: Any) -> str:
    """A new table with AppTable's keys and index, as a point-in-time restore creates one."""
    app = db.describe_table(TableName=services.resources["AppTable"])["Table"]
    name = f"restore-{uuid.uuid4().hex[:12]}"
    db.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=app["KeySchema"],
        AttributeDefinitions=app["AttributeDefinitions"],
        GlobalSecondaryIndexes=[
            {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
            for g in app["GlobalSecondaryIndexes"]
        ],
    )
    return name


def _scan(db: Any, table: str) -> dict[tuple[str, str], dict[str, Any]]:
    items: dict[tuple[str, str], dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = db.scan(**kwargs)
        for item in page["Items"]:
            items[(item["pk"]["S"], item["sk"]["S"])] = item
        if not page.get("LastEvaluatedKey"):
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _store(services: Any, table: str) -> DynamoPortalStore:
    codec = KmsCodec("local-key", lambda: KEY)
    return DynamoPortalStore(table, services.region, services.dynamodb_endpoint, codec=codec)


def _portal(member_id: str, refresh: str) -> Portal:
    return Portal(
        member_id=member_id,
        domain=f"{member_id[:8]}.example.com",
        client_endpoint=f"https://{member_id[:8]}.example.com/rest/",
        state=PortalState.ACTIVE,
        access_token="at-" + refresh,
        refresh_token=refresh,
        application_token="app-" + member_id,
        installed_at=T - 5000,
        refreshed_at=T - 5000,
        updated_at=T - 5000,
    )


class World:
    """Portals at time T, the restored copy, and what the live table did after T."""

    def __init__(self, db: Any, services: Any) -> None:
        self.db = db
        self.live = _table_like_app_table(db, services)
        self.restored = _table_like_app_table(db, services)
        self.live_store = _store(services, self.live)
        self.restored_store = _store(services, self.restored)
        self.caps = DynamoCapabilityStore(self.live, services.region, services.dynamodb_endpoint)
        ids = [uuid.uuid4().hex for _ in range(6)]
        self.refreshed, self.unchanged, self.lost, self.uninstalled, self.installed, self.failing = ids
        self.secrets: set[str] = set()
        # ---- time T
        for mid in (self.refreshed, self.unchanged, self.lost, self.uninstalled, self.failing):
            self._save(_portal(mid, f"rt-{mid}-at-T"))
            DynamoAppStorage(db, self.live, mid).put("settings", {"owner": mid})
        self._put_raw(self.unchanged, "LEASE#refresh", {"holder": {"S": "a refresh in flight at T"}})
        self.caps.add_history(self.uninstalled, T, {"what": "history of a portal uninstalled later"})
        for item in _scan(db, self.live).values():  # the point-in-time restore: a copy as of T
            db.put_item(TableName=self.restored, Item=item)
        # ---- after T, only in the live table
        self.newest = {mid: f"rt-{mid}-at-T" for mid in ids}
        self._refresh(self.refreshed, T + 100)
        self._refresh(self.refreshed, T + 200)  # twice: the restored one is two refreshes behind
        self._refresh(self.failing, T + 150)
        failing = self.live_store.get(self.failing)
        assert failing is not None
        self._save(
            replace(
                failing.with_token_state(TokenState.REFRESH_FAILING),
                token_state_at=T + 300,
                next_attempt_at=T + 900,
            )
        )
        for key in _scan(db, self.live):  # the incident: a portal's partition lost from the live table
            if key[0] == f"PORTAL#{self.lost}":
                db.delete_item(TableName=self.live, Key={"pk": {"S": key[0]}, "sk": {"S": key[1]}})
        DynamoAppStorage(db, self.live, self.refreshed).delete("settings")  # and one lost item
        lease = {"pk": {"S": f"PORTAL#{self.unchanged}"}, "sk": {"S": "LEASE#refresh"}}
        db.delete_item(TableName=self.live, Key=lease)  # the refresh in flight at T ended
        mark_uninstalled(self.live_store, self.uninstalled, clean=True, reason="test", schedule=self.caps)
        self.newest[self.uninstalled] = ""
        self._save(replace(_portal(self.installed, f"rt-{self.installed}-new"), installed_at=T + 400))
        self.newest[self.installed] = f"rt-{self.installed}-new"
        self.secrets |= {
            v["S"]
            for t in (self.live, self.restored)
            for i in _scan(db, t).values()
            for k, v in i.items()
            if k.endswith("_token") and "S" in v
        }

    def _save(self, portal: Portal) -> None:
        self.live_store.save(portal)
        self.secrets |= {portal.refresh_token, portal.access_token, portal.application_token}

    def _refresh(self, mid: str, at: int) -> None:
        current = self.live_store.get(mid)
        assert current is not None
        new = f"rt-{mid}-at-{at}"
        self._save(with_pair(current, "at-" + new, new, at + 3600, at, "refreshed"))
        self.newest[mid] = new

    def _put_raw(self, mid: str, sk: str, extra: dict[str, Any]) -> None:
        self.db.put_item(
            TableName=self.live,
            Item={"pk": {"S": f"PORTAL#{mid}"}, "sk": {"S": sk}, "member_id": {"S": mid}, **extra},
        )


@pytest.fixture
def world(db, services) -> World:
    return World(db, services)


def _merge(
    capsys, monkeypatch, services, source: str, target: str, *flags: str
) -> tuple[dict[str, Any], str]:
    monkeypatch.setenv("B24_TABLE_NAME", target)
    monkeypatch.setenv("AWS_REGION", services.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", services.dynamodb_endpoint)
    capsys.readouterr()
    assert main(["restore", "merge", "--from", source, "--into", target, "--json", *flags]) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.out + out.err


def _refresh_tokens(store: DynamoPortalStore, ids: list[str]) -> dict[str, str]:
    found = {mid: store.get(mid) for mid in ids}
    return {mid: (p.refresh_token if p else "<missing>") for mid, p in found.items()}


def test_merge_into_live_brings_lost_items_back_and_never_an_older_refresh_token(
    world, db, capsys, monkeypatch, services
):
    ids = list(world.newest)
    report, _ = _merge(capsys, monkeypatch, services, world.restored, world.live)

    assert _refresh_tokens(world.live_store, ids) == {
        **world.newest,
        world.lost: f"rt-{world.lost}-at-T",  # lost from live: it comes back as it was at T
    }
    lost = world.live_store.get(world.lost)
    assert lost is not None and lost.state == PortalState.ACTIVE
    assert DynamoAppStorage(db, world.live, world.lost).get("settings") == {"owner": world.lost}
    assert DynamoAppStorage(db, world.live, world.refreshed).get("settings") == {"owner": world.refreshed}
    gone = world.live_store.get(world.uninstalled)
    assert gone is not None and gone.state == PortalState.DELETED  # uninstalled after T stays so
    assert world.caps.history(world.uninstalled) == []  # and what its CLEAN uninstall purged stays away
    failing = world.live_store.get(world.failing)
    assert failing is not None and failing.token_state == TokenState.REFRESH_FAILING
    live = _scan(db, world.live)
    assert (f"PORTAL#{world.unchanged}", "LEASE#refresh") not in live  # a lease of T is not brought back
    assert report["tokens_kept_newer"] == 3  # refreshed, failing, uninstalled: live's newer fields kept
    assert report["tokens_taken"] == 0
    assert world.lost in report["portals"]["restored"]

    again, _ = _merge(capsys, monkeypatch, services, world.restored, world.live)
    assert _scan(db, world.live) == live  # a second run changes nothing
    assert again["restored"] == 0 and again["tokens_taken"] == 0


def test_merge_into_restored_table_makes_it_current_before_the_stack_is_pointed_at_it(
    world, db, capsys, monkeypatch, services
):
    ids = list(world.newest)
    report, _ = _merge(capsys, monkeypatch, services, world.live, world.restored)

    assert _refresh_tokens(world.restored_store, ids) == {
        **world.newest,
        world.lost: f"rt-{world.lost}-at-T",  # live lost it; the restored table keeps it
    }
    assert report["tokens_taken"] == 3  # refreshed, failing, uninstalled: the live table's newer fields
    gone = world.restored_store.get(world.uninstalled)
    assert gone is not None and gone.state == PortalState.DELETED and not gone.refresh_token
    history = DynamoCapabilityStore(world.restored, services.region, services.dynamodb_endpoint)
    assert history.history(world.uninstalled) == []  # what its CLEAN uninstall purged is purged here too
    assert report["purged"] >= 2
    failing = world.restored_store.get(world.failing)
    assert failing is not None and failing.token_state == TokenState.REFRESH_FAILING
    installed = world.restored_store.get(world.installed)
    assert installed is not None and installed.state == PortalState.ACTIVE
    # the taken records are found by the keep-alive sweep exactly where the live table had them
    from b24core.portals import token_index

    for mid in (world.refreshed, world.failing, world.uninstalled):
        merged = world.restored_store.get(mid)
        assert merged is not None
        raw = db.get_item(TableName=world.restored, Key={"pk": {"S": f"PORTAL#{mid}"}, "sk": {"S": "PORTAL"}})
        assert (raw["Item"]["gsi1pk"]["S"], raw["Item"]["gsi1sk"]["S"]) == token_index.index_keys(merged)

    snapshot = _scan(db, world.restored)
    again, _ = _merge(capsys, monkeypatch, services, world.live, world.restored)
    assert _scan(db, world.restored) == snapshot
    assert again["restored"] == 0 and again["tokens_taken"] == 0 and again["purged"] == 0
    # and merging back the other way brings no older token into the live table either
    _merge(capsys, monkeypatch, services, world.restored, world.live)
    assert _refresh_tokens(world.live_store, ids) == {**world.newest, world.lost: f"rt-{world.lost}-at-T"}


def test_dry_run_changes_nothing_and_no_output_shows_a_token(world, db, capsys, monkeypatch, services):
    before = (_scan(db, world.live), _scan(db, world.restored))
    dry, dry_out = _merge(capsys, monkeypatch, services, world.restored, world.live, "--dry-run")
    assert (_scan(db, world.live), _scan(db, world.restored)) == before
    assert dry["dry_run"] is True and world.lost in dry["portals"]["restored"]

    real, real_out = _merge(capsys, monkeypatch, services, world.restored, world.live)
    assert {k: v for k, v in dry.items() if k != "dry_run"} == {
        k: v for k, v in real.items() if k != "dry_run"
    }
    monkeypatch.setenv("B24_TABLE_NAME", world.live)
    assert main(["restore", "merge", "--from", world.live, "--into", world.restored]) == 0
    text = capsys.readouterr()
    secrets = {s for s in world.secrets if s}
    assert len(secrets) > 10
    for output in (dry_out, real_out, text.out + text.err):
        assert not [s for s in secrets if s in output]
        assert "rt-" not in output and "b24e1:" not in output and "sha256:" not in output


def test_same_table_twice_is_refused_and_nothing_written(world, db, capsys, monkeypatch, services):
    before = _scan(db, world.live)
    monkeypatch.setenv("B24_TABLE_NAME", world.live)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", services.dynamodb_endpoint)
    assert main(["restore", "merge", "--from", world.live, "--into", world.live]) == 2
    assert "same table" in capsys.readouterr().err
    assert _scan(db, world.live) == before


class _Interrupting:
    """The DynamoDB client, with a hook before each PutItem (a crash, or a function's save racing)."""

    def __init__(self, db: Any, before_put: Any) -> None:
        self._db, self._before_put, self.puts = db, before_put, 0

    def put_item(self, **kw: Any) -> Any:
        self.puts += 1
        self._before_put(self.puts, kw)
        return self._db.put_item(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_a_merge_that_stopped_halfway_is_finished_by_running_it_again(world, db):
    from b24core.portals.restore import merge

    def crash(n: int, _kw: Any) -> None:
        if n == 2:
            raise RuntimeError("the operator's laptop went to sleep")

    with pytest.raises(RuntimeError):
        merge(_Interrupting(db, crash), world.restored, world.live)
    merge(db, world.restored, world.live)

    assert _refresh_tokens(world.live_store, list(world.newest)) == {
        **world.newest,
        world.lost: f"rt-{world.lost}-at-T",
    }
    assert DynamoAppStorage(db, world.live, world.lost).get("settings") == {"owner": world.lost}
    assert DynamoAppStorage(db, world.live, world.refreshed).get("settings") == {"owner": world.refreshed}
    assert merge(db, world.restored, world.live).restored == 0


def test_a_refresh_the_stack_saves_while_the_merge_runs_is_never_overwritten(world, db):
    """Procedure B, step 4: the stack already runs on the restored table while the merge writes into
    it. A function refreshes a portal between the merge's read and its write: the merge's conditional
    write fails, it reads again, and the function's newer pair stays."""
    from b24core.portals.restore import merge

    racing = f"rt-{world.refreshed}-refreshed-during-the-merge"

    def refresh_first(_n: int, kw: Any) -> None:
        if kw["Item"]["pk"]["S"] == f"PORTAL#{world.refreshed}" and "version" in kw["ConditionExpression"]:
            current = world.restored_store.get(world.refreshed)
            if current is not None and current.refresh_token != racing:
                at = T + 500
                world.restored_store.save(
                    with_pair(current, "at-" + racing, racing, at + 3600, at, "refreshed")
                )

    report = merge(_Interrupting(db, refresh_first), world.live, world.restored)

    merged = world.restored_store.get(world.refreshed)
    assert merged is not None and merged.refresh_token == racing
    assert report.tokens_kept_newer >= 1
