"""`b24app` at fleet size against DynamoDB Local and the moto SQS server: the portal directory (paged
listing, JSON/CSV export, find, reindex), bulk recheck/probe/rebind with progress, and the DLQ
(inspect without secrets, per-portal redrive, purge).

Each test gets a table and queues of its own (cloned from template.yaml's), so the directory's one
gsi1 partition holds exactly the portals the test wrote. Lambda invokes go over HTTP to a stand-in
for the local stack's Invoke API that records what it was asked.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import botocore.client
import pytest

from b24cli.main import main
from b24core.capabilities.store import DynamoCapabilityStore
from b24core.delivery.modes import DeliveryMode
from b24core.delivery.store import DeliveryState, DynamoDeliveryStore
from b24core.portals.directory import PortalDirectory
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.store import DynamoPortalStore


# ---------------------------------------------------------------- a stack of the test's own
def _clone_table(services: Any, name: str) -> None:
    ddb = services.client("dynamodb")
    spec = ddb.describe_table(TableName=services.resources["AppTable"])["Table"]
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=spec["KeySchema"],
        AttributeDefinitions=spec["AttributeDefinitions"],
        GlobalSecondaryIndexes=[
            {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
            for g in spec["GlobalSecondaryIndexes"]
        ],
    )


class FakeLambda(BaseHTTPRequestHandler):
    """Lambda's Invoke API: answers like the functions do, records every call."""

    calls: list[tuple[str, dict[str, Any]]] = []
    failing: set[str] = set()

    def do_POST(self) -> None:
        name = self.path.split("/functions/", 1)[1].split("/", 1)[0]
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        type(self).calls.append((name, payload))
        member = payload.get("member_id")
        if member in self.failing:
            answer: dict[str, Any] = {"error": "portal_not_active", "member_id": member}
        elif payload.get("action") == "probe":
            answer = {"member_id": member, "probe": {"outcome": "pending"}}
        elif payload.get("action") == "rebind":
            answer = {"member_id": member, "outcome": "pulled", "enqueued": 0}
        else:
            answer = {"features": {}, "checked_at": int(time.time())}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        return


@pytest.fixture
def fleet(services, tmp_path, monkeypatch) -> Iterator[dict[str, Any]]:
    table = f"fleet-{uuid.uuid4().hex[:10]}"
    _clone_table(services, table)
    sqs = services.client("sqs")
    queue = sqs.create_queue(QueueName=f"events-{table}")["QueueUrl"]
    dlq = sqs.create_queue(QueueName=f"dlq-{table}")["QueueUrl"]
    FakeLambda.calls, FakeLambda.failing = [], set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLambda)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stack = {
        "region": services.region,
        "dynamodb_endpoint": services.dynamodb_endpoint,
        "sqs_endpoint": services.sqs_endpoint,
        "invoke_url": f"http://127.0.0.1:{server.server_address[1]}",
        "resources": {
            "AppTable": table,
            "EventsQueue": queue,
            "EventsDLQ": dlq,
            "CapabilityCheckFunction": "caps-fn",
            "OfflinePullFunction": "pull-fn",
        },
    }
    (tmp_path / "stack.json").write_text(json.dumps(stack))
    monkeypatch.delenv("B24_STACK_NAME", raising=False)
    monkeypatch.delenv("B24_TABLE_NAME", raising=False)
    monkeypatch.setenv("B24_LOCAL_STATE_DIR", str(tmp_path))
    store = DynamoPortalStore(table, services.region, services.dynamodb_endpoint)
    try:
        yield {"store": store, "table": table, "sqs": sqs, "queue": queue, "dlq": dlq, "tmp": tmp_path}
    finally:
        server.shutdown()
        services.client("dynamodb").delete_table(TableName=table)


@pytest.fixture
def cli(capsys):
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def seed(store: DynamoPortalStore, n: int, prefix: str = "shop", **over: Any) -> list[Portal]:
    now = int(time.time())
    saved = []
    for i in range(n):
        mid = uuid.uuid4().hex
        portal = Portal(
            member_id=mid,
            domain=f"{prefix}{i:02d}.bitrix24.com",
            client_endpoint=f"https://{prefix}{i:02d}.bitrix24.com/rest/",
            state=PortalState.ACTIVE,
            access_token=f"secret-access-{mid}",
            refresh_token=f"secret-refresh-{mid}",
            application_token=f"secret-app-{mid}",
            installed_at=now,
            refreshed_at=now,
        )
        saved.append(store.save(replace(portal, **over)))
    return saved


def secrets_of(portals: list[Portal]) -> list[str]:
    return [s for p in portals for s in (f"secret-access-{p.member_id}", f"secret-refresh-{p.member_id}")] + [
        f"secret-app-{p.member_id}" for p in portals
    ]


# ---------------------------------------------------------------- the directory
def test_list_pages_through_the_index_with_a_cursor_and_never_scans(fleet, cli, monkeypatch):
    portals = seed(fleet["store"], 7)
    operations: list[str] = []
    real = botocore.client.BaseClient._make_api_call

    def spy(self: Any, operation: str, params: Any) -> Any:
        operations.append(operation)
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", spy)
    pages, cursor = [], None
    while True:
        code, out, err = cli(
            "portals", "list", "--limit", "3", "--json", *(["--cursor", cursor] if cursor else [])
        )
        assert code == 0
        pages.append([v["domain"] for v in json.loads(out)])
        cursor = err.split("--cursor ", 1)[1].split()[0] if "--cursor" in err else None
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    listed = [d for page in pages for d in page]
    assert listed == sorted(p.domain for p in portals)  # domain order, each portal exactly once
    code, out, _ = cli("portals", "list", "--all")
    assert code == 0 and all(p.member_id in out for p in portals)
    assert "Query" in operations and "Scan" not in operations
    code, _, err = cli("portals", "list", "--cursor", "not-a-cursor")
    assert code == 2 and "--cursor: not a cursor this command printed" in err


def test_json_and_csv_exports_carry_no_token(fleet, cli):
    portals = seed(fleet["store"], 4)
    code, as_json, _ = cli("portals", "list", "--all", "--json")
    assert code == 0 and {v["member_id"] for v in json.loads(as_json)} == {p.member_id for p in portals}
    code, as_csv, _ = cli("portals", "list", "--all", "--csv")
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert code == 0 and [r["domain"] for r in rows] == sorted(p.domain for p in portals)
    assert rows[0]["state"] == "active" and rows[0]["features"] == "not checked"
    for secret in secrets_of(portals):
        assert secret not in as_json and secret not in as_csv


def test_list_filters_by_state_domain_and_delivery_mode(fleet, cli, services):
    seed(fleet["store"], 3, prefix="alpha")
    blocked = seed(fleet["store"], 2, prefix="beta", state=PortalState.BLOCKED)
    code, out, _ = cli("portals", "list", "--state", "blocked", "--json")
    assert code == 0 and {v["member_id"] for v in json.loads(out)} == {p.member_id for p in blocked}
    code, out, _ = cli("portals", "list", "--domain-contains", "ALPHA0", "--json")
    assert len(json.loads(out)) == 3
    delivery = DynamoDeliveryStore(fleet["table"], services.region, services.dynamodb_endpoint)
    delivery.save(DeliveryState(blocked[0].member_id, mode=DeliveryMode.PULL))
    code, out, _ = cli("portals", "list", "--mode", "pull", "--json")
    assert [v["member_id"] for v in json.loads(out)] == [blocked[0].member_id]
    code, out, _ = cli("portals", "list", "--mode", "none", "--json")  # not probed yet
    assert len(json.loads(out)) == 4


def test_find_by_exact_domain_prefix_substring_and_member_id(fleet, cli):
    portals = seed(fleet["store"], 12, prefix="acme")
    code, out, _ = cli("portals", "find", "https://ACME03.bitrix24.com/", "--json")
    found = json.loads(out)
    assert code == 0 and [(f["member_id"], f["match"]) for f in found] == [(portals[3].member_id, "exact")]
    code, out, _ = cli("portals", "find", "acme1", "--json")
    assert {f["domain"] for f in json.loads(out)} == {"acme10.bitrix24.com", "acme11.bitrix24.com"}
    assert {f["match"] for f in json.loads(out)} == {"prefix"}
    code, out, _ = cli("portals", "find", "me07.bitrix", "--json")
    assert [(f["domain"], f["match"]) for f in json.loads(out)] == [("acme07.bitrix24.com", "substring")]
    code, out, _ = cli("portals", "find", portals[5].member_id)
    assert code == 0 and "member_id" in out and "acme05.bitrix24.com" in out
    code, _, err = cli("portals", "find", "nowhere.example")
    assert code == 1 and "no portal matches" in err
    for secret in secrets_of(portals):
        assert secret not in out


def test_reindex_lists_portals_saved_before_the_directory_and_is_idempotent(fleet, cli, services):
    store = fleet["store"]
    portals = seed(store, 5, prefix="old")
    for p in portals:  # as if saved by a bundle without the directory
        store.directory.delete(p.member_id)
    code, out, _ = cli("portals", "list", "--all", "--json")
    assert json.loads(out) == []
    code, out, _ = cli("portals", "reindex", "--page-size", "2")
    assert code == 0 and "reindexed 5 portal(s): 5 directory entr(ies) written" in out
    code, out, _ = cli("portals", "list", "--all", "--json")
    assert {v["member_id"] for v in json.loads(out)} == {p.member_id for p in portals}
    code, out, _ = cli("portals", "reindex")
    assert "0 directory entr(ies) written, 5 already there" in out
    # An uninstall with CLEAN keeps the record, and so its directory entry.
    caps = DynamoCapabilityStore(fleet["table"], services.region, services.dynamodb_endpoint)
    caps.purge(portals[0].member_id)
    assert [e.member_id for e, _ in store.directory.find(portals[0].domain)] == [portals[0].member_id]


def test_a_domain_change_moves_the_directory_entry(fleet):
    store = fleet["store"]
    (portal,) = seed(store, 1, prefix="before")
    store.save(replace(store.get(portal.member_id), domain="after.bitrix24.com"))
    directory: PortalDirectory = store.directory
    assert directory.find("before00.bitrix24.com") == []
    assert [e.member_id for e, how in directory.find("after.bitrix24.com")] == [portal.member_id]


# ---------------------------------------------------------------- bulk actions
def test_bulk_probe_over_all_portals_shows_progress_and_resumes_from_its_checkpoint(fleet, cli):
    portals = seed(fleet["store"], 5)
    seed(fleet["store"], 1, prefix="gone", state=PortalState.DELETED)  # not active: left out
    FakeLambda.failing = {portals[2].member_id}
    checkpoint = fleet["tmp"] / "probe.done"
    code, out, err = cli("portals", "probe", "--all", "--checkpoint", str(checkpoint), "--concurrency", "2")
    assert code == 1  # one portal failed
    assert "probe [" in err and "5/5" in err and "failed=1" in err and "pending=4" in err
    assert "5 portal(s) selected" in out and f"failed {portals[2].member_id}: portal_not_active" in out
    assert sorted(p["member_id"] for _, p in FakeLambda.calls) == sorted(p.member_id for p in portals)
    assert {(name, p["action"]) for name, p in FakeLambda.calls} == {("pull-fn", "probe")}

    FakeLambda.calls, FakeLambda.failing = [], set()
    code, out, err = cli("portals", "probe", "--all", "--checkpoint", str(checkpoint))
    assert code == 0 and "4 done before" in out
    assert [p["member_id"] for _, p in FakeLambda.calls] == [portals[2].member_id]


def test_bulk_recheck_and_rebind_take_only_the_filtered_portals(fleet, cli):
    seed(fleet["store"], 3, prefix="keep")
    chosen = seed(fleet["store"], 2, prefix="pick")
    code, out, err = cli("portals", "recheck", "--domain-contains", "pick", "--json")
    assert code == 0 and json.loads(out)["done"] == 2 and "recheck [" in err
    assert {(n, p["member_id"], p["trigger"]) for n, p in FakeLambda.calls} == {
        ("caps-fn", c.member_id, "manual") for c in chosen
    }
    FakeLambda.calls = []
    code, out, _ = cli("portals", "rebind", chosen[0].member_id)
    assert code == 0 and "pulled" in out
    assert FakeLambda.calls == [("pull-fn", {"action": "rebind", "member_id": chosen[0].member_id})]
    code, _, err = cli("portals", "rebind")
    assert code == 2 and "--all or a filter" in err


# ---------------------------------------------------------------- the DLQ
def _dead(fleet: dict[str, Any], member_id: str, object_id: int, raw_auth: bool = False) -> None:
    body: dict[str, Any] = {
        "v": 1,
        "event": "ONCRMDEALUPDATE",
        "member_id": member_id,
        "domain": f"{member_id[:6]}.bitrix24.com",
        "data": {"FIELDS": {"ID": str(object_id)}},
        "received_at": int(time.time()),
    }
    attrs = {"member_id": {"DataType": "String", "StringValue": member_id}}
    if raw_auth:  # a raw form someone sent by hand: its tokens must never be shown
        body = {
            "event": "ONCRMDEALADD",
            "data": {"FIELDS": {"ID": str(object_id)}},
            "auth": {
                "member_id": member_id,
                "domain": "raw.bitrix24.com",
                "access_token": "dlq-secret-access",
                "refresh_token": "dlq-secret-refresh",
                "application_token": "dlq-secret-app",
            },
        }
        attrs = {}
    fleet["sqs"].send_message(QueueUrl=fleet["dlq"], MessageBody=json.dumps(body), MessageAttributes=attrs)


def _depth(fleet: dict[str, Any], queue: str) -> int:
    attrs = fleet["sqs"].get_queue_attributes(
        QueueUrl=fleet[queue],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _visible(fleet: dict[str, Any], queue: str) -> int:
    attrs = fleet["sqs"].get_queue_attributes(
        QueueUrl=fleet[queue], AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def test_dlq_inspect_shows_each_portals_events_without_secrets_and_leaves_them(fleet, cli):
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    _dead(fleet, a, 1)
    _dead(fleet, a, 2, raw_auth=True)
    _dead(fleet, b, 3)
    code, out, _ = cli("events", "dlq", "inspect", "--json")
    shown = json.loads(out)
    assert code == 0 and sorted((e["member_id"], e["object_id"]) for e in shown) == sorted(
        [(a, "1"), (a, "2"), (b, "3")]
    )
    raw = next(e for e in shown if e["object_id"] == "2")
    assert raw["domain"] == "raw.bitrix24.com" and raw["event"] == "ONCRMDEALADD" and raw["attempts"] >= 1
    assert "dlq-secret" not in out
    code, out, _ = cli("events", "dlq", "inspect", "--member-id", a)
    assert (
        code == 0 and "2 dead-lettered event(s) of portal" in out and b not in out and "dlq-secret" not in out
    )
    assert _visible(fleet, "dlq") == 3  # looking took nothing away, and hid nothing


def test_redrive_of_one_portal_leaves_the_others_in_the_dlq(fleet, cli):
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    for i in range(3):
        _dead(fleet, a, i)
    for i in range(12):  # more than one receive batch of the other portal's
        _dead(fleet, b, 100 + i)
    code, out, _ = cli("events", "redrive", "--member-id", a)
    assert code == 0 and "returned 3 event(s) of portal" in out and "12 other event(s) stay" in out
    assert _depth(fleet, "queue") == 3 and _visible(fleet, "dlq") == 12
    got = fleet["sqs"].receive_message(
        QueueUrl=fleet["queue"], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    assert {json.loads(m["Body"])["member_id"] for m in got} == {a}
    assert {m["MessageAttributes"]["member_id"]["StringValue"] for m in got} == {a}


def test_purge_needs_yes_and_takes_only_the_named_portals_events(fleet, cli):
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    _dead(fleet, a, 1)
    _dead(fleet, b, 2)
    _dead(fleet, b, 3)
    code, _, err = cli("events", "dlq", "purge", "--member-id", b)
    assert code == 2 and "--yes" in err and _visible(fleet, "dlq") == 3
    code, out, _ = cli("events", "dlq", "purge", "--member-id", b, "--yes")
    assert code == 0 and "deleted 2 dead-lettered event(s)" in out
    assert _depth(fleet, "dlq") == 1
    code, out, _ = cli("events", "dlq", "inspect", "--json")
    assert [e["member_id"] for e in json.loads(out)] == [a]
    code, out, _ = cli("events", "dlq", "purge", "--yes")
    assert code == 0 and _depth(fleet, "dlq") == 0
