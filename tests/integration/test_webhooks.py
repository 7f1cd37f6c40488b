"""Isolated boxes against the simulator over HTTP: the blocked authorization server, its diagnosis,
incoming-webhook connection (every refusal stores nothing), REST through the webhook, the capability
check with webhook auth, and the webhook store on DynamoDB Local."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from b24core.bitrix.errors import AccessDenied, B24Error, NoAuthFound
from b24core.bitrix.oauth import AuthServer
from b24core.bitrix.webhook import WebhookRefused, parse_incoming, webhook_call
from b24core.capabilities.check import check_portal
from b24core.capabilities.isolation import AuthReach, diagnose_client, summary_line
from b24core.capabilities.manifest import load_manifest
from b24core.capabilities.report import NOT_FOR_WEBHOOKS, Status
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.store import InMemoryPortalStore
from b24core.portals.versioned import StaleWrite
from b24core.portals.webhook_store import DynamoWebhookStore, InMemoryWebhookStore, WebhookConnection
from b24core.tokens.client import PortalClient
from b24core.trust.webhooks import connect, disconnect
from b24sim import Simulator

MANIFEST = load_manifest()
NEEDED = MANIFEST.required_scopes()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator("local.webhook-test", "webhook-test-secret") as s:
        yield s


def installed_box(sim: Simulator, **kw: Any) -> tuple[Any, Portal]:
    portal = sim.add_portal(profile="box", **kw)
    sim.install(portal.domain, "http://127.0.0.1:9/install", mode="event")
    tokens = sim.issue_tokens(portal.domain)
    record = Portal(
        member_id=portal.member_id,
        domain=portal.domain,
        client_endpoint=portal.client_endpoint,
        state=PortalState.ACTIVE,
        access_token=tokens["access_token"],
        access_expires_at=2**31,
    )
    return portal, record


def oauth_client(record: Portal) -> PortalClient:
    """An OAuth client whose keeper only re-reads the store (tokens never expire in these tests)."""
    portals, _ = stores(record)
    return PortalClient(portals.get(record.member_id), keeper=SimpleNamespace(store=portals))  # type: ignore[arg-type]


def stores(*portals: Portal) -> tuple[InMemoryPortalStore, InMemoryWebhookStore]:
    ps = InMemoryPortalStore()
    for p in portals:
        ps.save(p)
    return ps, InMemoryWebhookStore()


# ---------------------------------------------------------------- the simulator
def test_a_box_without_the_auth_server_refuses_oauth_but_serves_its_incoming_webhook(sim):
    box, record = installed_box(sim)
    box.auth_server_blocked = True
    oauth = oauth_client(record)
    with pytest.raises(NoAuthFound):
        oauth.call("server.time")
    hook = parse_incoming(box.add_incoming_webhook(["crm"]), local=True)
    assert webhook_call(hook, "scope").result == ["crm"]
    deal = box.ui_deal_add({"TITLE": "by webhook"})
    assert webhook_call(hook, "crm.deal.get", {"id": deal}).result["TITLE"] == "by webhook"
    with pytest.raises(AccessDenied):
        webhook_call(hook, "event.bind", {"event": "ONCRMDEALADD", "handler": "https://x/"})
    with pytest.raises(B24Error):  # an unknown code
        webhook_call(replace(hook, code="0" * 32), "scope")
    ok = [c for c in sim.calls_for(box.domain) if c.status == 200]
    assert {c.method for c in ok} >= {"scope", "crm.deal.get"}


# ---------------------------------------------------------------- diagnosis
def test_diagnosis_names_the_unreachable_authorization_server_only_when_it_accepts_the_token(sim):
    auth = AuthServer(sim.url)
    box, record = installed_box(sim)
    box.auth_server_blocked = True
    client = oauth_client(record)
    with pytest.raises(NoAuthFound) as refused:
        client.call("server.time")
    found = diagnose_client(client, refused.value, auth)
    assert found is not None and found["auth_server"] == AuthReach.UNREACHABLE
    assert "oauth.bitrix.info" in found["advice"][0] and "connect-webhook" in found["advice"][0]
    assert summary_line({"isolation": found}) == "authorization server unreachable from the portal"
    assert record.access_token not in repr(found)

    # The same refusal for a token the authorization server refuses too: not the network.
    other, other_record = installed_box(sim)
    bad = oauth_client(replace(other_record, access_token="f" * 32))
    with pytest.raises(NoAuthFound) as refused_too:
        bad.call("server.time")
    assert diagnose_client(bad, refused_too.value, auth)["auth_server"] == AuthReach.REJECTED
    # A webhook client or a non-auth failure: nothing to diagnose.
    assert diagnose_client(client, B24Error("x"), auth) is None


# ---------------------------------------------------------------- connecting
def test_connect_attaches_to_the_existing_record_and_rest_then_goes_through_the_webhook(sim, caplog):
    caplog.set_level(logging.INFO)
    box, record = installed_box(sim)
    box.auth_server_blocked = True
    portals, hooks = stores(record)
    url = box.add_incoming_webhook(["crm", "im", "user"])
    code = url.rstrip("/").rsplit("/", 1)[-1]
    done = connect(
        url, portals=portals, webhooks=hooks, required_scopes=NEEDED, local=True, outgoing_token="o" * 32
    )
    assert not done.created and done.portal.member_id == record.member_id
    view = done.view()
    assert view["auth_mode"] == "webhook" and view["domain"] == box.domain
    assert view["webhook_scopes"] == ["crm", "im", "user"] and view["has_outgoing_token"] is True
    assert code not in repr(view) and code not in repr(done.connection) and "o" * 32 not in repr(view)

    conn = hooks.get(record.member_id)
    client = PortalClient(record, keeper=None, webhook=conn.incoming)  # type: ignore[arg-type]
    deal = box.ui_deal_add({"TITLE": "seen"})
    assert client.call("crm.deal.get", {"id": deal})["TITLE"] == "seen"
    assert client.batch({"a": ("crm.deal.get", {"id": deal})}).result["a"]["TITLE"] == "seen"
    assert sim.oauth.requests == [] or all(r.get("grant_type") != "refresh_token" for r in sim.oauth.requests)

    # The capability check with what webhook auth allows: events are "not available to webhooks".
    report = check_portal(client, MANIFEST, "http://127.0.0.1:9/events")
    crm = report["features"]["crm"]
    assert crm["status"] == Status.AVAILABLE and crm["events_check"] == NOT_FOR_WEBHOOKS
    assert crm["missing_events"] == [] and report["sources"]["events"] == NOT_FOR_WEBHOOKS
    assert report["bound"] == [] and report["sources"]["auth"] == "webhook"
    assert report["features"]["telephony"]["status"] == Status.MISSING  # the box lacks the module
    assert not any(c.method in ("events", "event.bind", "app.info", "event.get") for c in sim.calls)
    assert not any("event" in m for c in sim.calls for m in c.sub_methods if m.startswith("event"))

    assert disconnect(record.member_id, hooks) and hooks.get(record.member_id) is None
    assert not disconnect(record.member_id, hooks)
    logged = caplog.text + repr([r.__dict__ for r in caplog.records])
    assert code not in logged and "o" * 32 not in logged
    assert "webhook connected" in logged and "webhook disconnected" in logged


def test_connect_creates_a_record_for_a_portal_met_first_by_webhook(sim):
    box = sim.add_portal(profile="box")
    portals, hooks = stores()
    done = connect(
        box.add_incoming_webhook(["crm"]), portals=portals, webhooks=hooks, required_scopes=NEEDED, local=True
    )
    assert done.created and done.portal.state == PortalState.ACTIVE
    assert done.portal.client_endpoint == box.client_endpoint and done.portal.domain == box.domain
    assert portals.get(done.portal.member_id) is not None and hooks.get(done.portal.member_id) is not None
    again = connect(  # connecting again replaces the webhook on the same record
        box.add_incoming_webhook(["crm", "im"]),
        portals=portals,
        webhooks=hooks,
        required_scopes=NEEDED,
        local=True,
    )
    assert not again.created and again.portal.member_id == done.portal.member_id
    assert again.connection.scopes == ("crm", "im") and len(portals.list_all()) == 1


@pytest.mark.parametrize(
    ("make_url", "local", "message"),
    [
        (lambda box: box.add_incoming_webhook(["crm"]), False, "https"),
        (lambda box: box.add_incoming_webhook(["crm"]).replace("http://", "https://"), False, "private"),
        (lambda box: "https://10.1.2.3/rest/1/abcdef123456/", False, "private"),
        (lambda box: "https://[::1]/rest/1/abcdef123456/", False, "private"),
        (lambda box: "https://portal.example.com/rest/app.info", False, "not an incoming webhook"),
        (lambda box: "ftp://portal.example.com/rest/1/abc/", False, "https"),
        (lambda box: box.client_endpoint + "1/" + "0" * 32 + "/", True, "refused the webhook"),
        (lambda box: box.add_incoming_webhook(["user"]), True, "lacks the scope(s) crm"),
        (lambda box: box.add_incoming_webhook(["crm"]) + "?a=1", True, "query"),
    ],
    ids=[
        "http",
        "loopback",
        "private-ip",
        "private-ip6",
        "not-a-webhook",
        "ftp",
        "error-answer",
        "scopes",
        "query",
    ],
)
def test_bad_webhooks_are_refused_with_a_clear_message_and_nothing_is_stored(sim, make_url, local, message):
    box, record = installed_box(sim)
    portals, hooks = stores(record)
    before = portals.list_all()
    with pytest.raises(WebhookRefused) as refused:
        connect(make_url(box), portals=portals, webhooks=hooks, required_scopes=NEEDED, local=local)
    assert message in str(refused.value)
    assert portals.list_all() == before and hooks.get(record.member_id) is None


def test_a_webhook_of_another_portal_is_refused(sim):
    box, record = installed_box(sim)
    other = sim.add_portal(profile="box")
    portals, hooks = stores(record)
    with pytest.raises(WebhookRefused, match="belongs to"):
        connect(
            other.add_incoming_webhook(["crm"]),
            portals=portals,
            webhooks=hooks,
            required_scopes=NEEDED,
            member_id=record.member_id,
            local=True,
        )
    with pytest.raises(WebhookRefused, match="no portal"):
        connect(
            box.add_incoming_webhook(["crm"]),
            portals=portals,
            webhooks=hooks,
            required_scopes=NEEDED,
            member_id="nope",
            local=True,
        )
    assert hooks.get(record.member_id) is None and len(portals.list_all()) == 1


def test_a_public_name_resolving_to_a_private_address_is_refused(monkeypatch):
    import socket

    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("192.168.1.5", 0))])
    with pytest.raises(WebhookRefused, match="private"):
        parse_incoming("https://crm.example.com/rest/7/abcdef123456/")
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("93.184.216.34", 0))])
    hook = parse_incoming("https://crm.example.com/rest/7/abcdef123456/")
    assert hook.base == "https://crm.example.com/rest/" and hook.user_id == 7
    assert "abcdef123456" not in hook.masked() and "abcdef123456" not in repr(hook)


# ---------------------------------------------------------------- the store on DynamoDB Local
def test_webhook_store_round_trips_and_saves_are_optimistic(services, member_id):
    store = DynamoWebhookStore(services.resources["AppTable"], services.region, services.dynamodb_endpoint)
    first = store.save(
        WebhookConnection(member_id, "https://x.example/rest/", 3, "c" * 32, "t" * 32, ("crm",))
    )
    again = store.get(member_id)
    assert again == first and again.code == "c" * 32 and again.scopes == ("crm",)
    store.save(replace(again, scopes=("crm", "im")))
    with pytest.raises(StaleWrite):
        store.save(replace(again, scopes=()))
    assert store.get(member_id).scopes == ("crm", "im")
    store.delete(member_id)
    assert store.get(member_id) is None


def test_http_answers_from_the_webhook_never_echo_its_code(sim):
    box = sim.add_portal(profile="box")
    url = box.add_incoming_webhook(["crm"])
    code = url.rstrip("/").rsplit("/", 1)[-1]
    resp = httpx.post(url + "no.such.method", json={})
    assert resp.status_code == 404 and code not in resp.text
