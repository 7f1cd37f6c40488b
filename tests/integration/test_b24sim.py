"""The Bitrix24 simulator over real HTTP: auth server, portals, batch, limits, event queue, lifecycle.

Each test starts a real simulator on a free port and a tiny real HTTP receiver for deliveries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from b24sim import Portal, Simulator, forms

CLIENT_ID = "local.sim-test"
CLIENT_SECRET = "test-client-secret-value"


# -- a tiny handler server --------------------------------------------------------------------------
@dataclass
class Received:
    path: str
    query: dict[str, str]
    content_type: str
    body: str

    @property
    def form(self) -> dict[str, Any]:
        return forms.parse(self.body)

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in parse_qsl(self.body, keep_blank_values=True)]


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            rec.requests.append(
                Received(
                    parts.path, dict(parse_qsl(parts.query)), self.headers.get("Content-Type") or "", body
                )
            )
            status = rec.status.get(parts.path, 200)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(CLIENT_ID, CLIENT_SECRET) as s:
        yield s


def call(portal: Portal, method: str, token: str, **params: Any) -> httpx.Response:
    return httpx.post(portal.client_endpoint + method, json={"auth": token, **params})


def install_event(sim: Simulator, portal: Portal, receiver: Receiver, **kwargs: Any) -> dict[str, Any]:
    response = sim.install(portal.domain, receiver.url + "/install", mode="event", **kwargs)
    assert response is not None and response.status_code == 200
    auth: dict[str, Any] = receiver.at("/install")[-1].form["auth"]
    return auth


def refresh(sim: Simulator, refresh_token: str, secret: str = CLIENT_SECRET) -> httpx.Response:
    return httpx.get(
        sim.oauth_url + "/oauth/token/",
        params={
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": secret,
            "refresh_token": refresh_token,
        },
    )


# -- authorization server ---------------------------------------------------------------------------
def test_refresh_token_is_single_use(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("acme.bitrix24.com")
    auth = install_event(sim, portal, receiver)

    assert refresh(sim, auth["refresh_token"], secret="wrong").status_code == 401
    assert refresh(sim, auth["refresh_token"], secret="wrong").json()["error"] == "invalid_client"

    first = refresh(sim, auth["refresh_token"])
    assert first.status_code == 200
    tokens = first.json()
    assert list(tokens) == [
        "access_token",
        "client_endpoint",
        "domain",
        "expires",
        "expires_in",
        "member_id",
        "refresh_token",
        "scope",
        "server_endpoint",
        "status",
        "user_id",
    ]
    assert tokens["domain"] == urlsplit(sim.oauth_url).netloc
    assert tokens["client_endpoint"] == portal.client_endpoint
    assert tokens["member_id"] == portal.member_id
    assert tokens["expires_in"] == 3600
    assert tokens["refresh_token"] != auth["refresh_token"]

    again = refresh(sim, auth["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert refresh(sim, tokens["refresh_token"]).status_code == 200

    outcomes = [(r.kind, r.grant_type, r.outcome) for r in sim.oauth.requests]
    assert outcomes == [
        ("token", "refresh_token", "invalid_client"),
        ("token", "refresh_token", "invalid_client"),
        ("token", "refresh_token", "ok"),
        ("token", "refresh_token", "invalid_grant"),
        ("token", "refresh_token", "ok"),
    ]
    # POST form works too, and a portal-side /oauth/token/ is proxied on the cloud.
    pair = sim.issue_tokens(portal.domain)
    posted = httpx.post(
        portal.base_url + "/oauth/token/",
        data={
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": pair["refresh_token"],
        },
    )
    assert posted.status_code == 200


def test_payment_required_and_auth_server_down(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("paid.bitrix24.com")
    box = sim.add_portal("crm.example.com", profile="box")
    auth = install_event(sim, portal, receiver)
    install_event(sim, box, receiver)

    portal.payment_required = True
    answer = refresh(sim, auth["refresh_token"])
    assert answer.json() == {"error": "PAYMENT_REQUIRED", "error_description": "Payment required"}
    portal.payment_required = False

    sim.oauth.down = True
    down = refresh(sim, auth["refresh_token"])
    assert down.status_code == 503
    assert not down.headers["content-type"].startswith("application/json")
    sim.oauth.down = False
    assert refresh(sim, auth["refresh_token"]).status_code == 200  # failed attempts did not burn it
    assert [r.outcome for r in sim.oauth.requests] == ["PAYMENT_REQUIRED", "down", "ok"]

    # A box does not proxy /oauth/token/ on its own address (refresh only at the auth server).
    box_pair = sim.issue_tokens(box.domain)
    proxied = httpx.get(box.base_url + "/oauth/token/", params={"refresh_token": box_pair["refresh_token"]})
    assert proxied.status_code == 404


def test_app_info_on_the_auth_server(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("acme.bitrix24.com")
    auth = install_event(sim, portal, receiver, scope="crm,im")
    info = httpx.get(sim.oauth_url + "/rest/app.info", params={"auth": auth["access_token"]})
    assert info.status_code == 200
    result = info.json()["result"]
    assert result["client_id"] == CLIENT_ID
    assert result["scope"] == "crm,im"
    assert result["user_id"] == 1
    assert result["install"] == {
        "installed": True,
        "version": 1,
        "status": "F",
        "scope": "crm,im",
        "domain": portal.domain,
        "uri": portal.base_url,
        "client_endpoint": portal.client_endpoint,
        "member_id": portal.member_id,
        "member_type": "PORTAL",
    }
    assert "time" in info.json()

    bad = httpx.get(sim.oauth_url + "/rest/app.info", params={"auth": "nope"})
    assert (bad.status_code, bad.json()["error"]) == (401, "invalid_token")
    sim.clock.advance(3601)
    expired = httpx.get(
        sim.oauth_url + "/rest/app.info", headers={"Authorization": f"Bearer {auth['access_token']}"}
    )
    assert (expired.status_code, expired.json()["error"]) == (401, "expired_token")
    assert [r.kind for r in sim.oauth.requests] == ["app.info"] * 3


# -- portal REST ------------------------------------------------------------------------------------
def test_expired_token_after_clock_advance(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("acme.bitrix24.com")
    auth = install_event(sim, portal, receiver)
    ok = call(portal, "server.time", auth["access_token"])
    assert ok.status_code == 200
    assert set(ok.json()["time"]) >= {
        "start",
        "finish",
        "duration",
        "processing",
        "date_start",
        "date_finish",
    }

    sim.clock.advance(3601)
    expired = call(portal, "server.time", auth["access_token"])
    assert expired.status_code == 401
    assert expired.json()["error"] == "expired_token"

    fresh = refresh(sim, auth["refresh_token"]).json()
    assert call(portal, "server.time", fresh["access_token"]).status_code == 200

    unknown = call(portal, "server.time", "not-a-token")
    assert (unknown.status_code, unknown.json()["error"]) == (401, "NO_AUTH_FOUND")
    missing = httpx.post(portal.client_endpoint + "server.time")
    assert (missing.status_code, missing.json()["error"]) == (401, "NO_AUTH_FOUND")
    # Query string, form body and Bearer header are all accepted.
    token = fresh["access_token"]
    assert httpx.get(portal.client_endpoint + "server.time.json", params={"auth": token}).status_code == 200
    assert httpx.post(portal.client_endpoint + "server.time", data={"auth": token}).status_code == 200
    bearer = httpx.post(portal.client_endpoint + "server.time", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 200


def test_unknown_method_and_insufficient_scope(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("acme.bitrix24.com")
    token = install_event(sim, portal, receiver, scope=["crm"])["access_token"]
    missing = call(portal, "no.such.method", token)
    assert missing.status_code == 404
    assert missing.json() == {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}
    denied = call(portal, "im.notify.system.add", token, USER_ID=1, MESSAGE="hi")
    assert (denied.status_code, denied.json()["error"]) == (403, "insufficient_scope")
    got = call(portal, "method.get", token, name="im.notify.system.add").json()["result"]
    assert got == {"isExisting": True, "isAvailable": False}
    assert call(portal, "scope", token).json()["result"] == ["crm"]
    assert "telephony" in call(portal, "scope", token, full=True).json()["result"]
    assert "im.notify.system.add" not in call(portal, "methods", token).json()["result"]
    assert "im.notify.system.add" in call(portal, "methods", token, full=True).json()["result"]


def test_leaky_bucket_blocks_after_threshold_and_recovers(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("acme.bitrix24.com")  # default X=50, Y=2
    token = install_event(sim, portal, receiver)["access_token"]
    sim.time_scale = 0.0  # freeze draining while we burst, so a slow machine cannot drain the bucket
    with httpx.Client(base_url=portal.client_endpoint) as client:
        statuses = [client.post("server.time", json={"auth": token}).status_code for _ in range(50)]
        assert statuses == [200] * 50
        blocked = client.post("server.time", json={"auth": token})
        assert blocked.status_code == 503
        assert blocked.json() == {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
        sim.time_scale = 1.0
        sim.clock.advance(1.0)  # drains Y=2
        assert client.post("server.time", json={"auth": token}).status_code == 200
        assert client.post("server.time", json={"auth": token}).status_code == 200
    assert [c.status for c in sim.calls_for(portal.domain)].count(503) == 1


def test_operation_time_limit_and_multipart(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("acme.bitrix24.com")
    token = install_event(sim, portal, receiver)["access_token"]
    portal.operating_limit_s = 1.0
    portal.method_cost["crm.deal.list"] = 0.6  # each call "costs" 0.6 s of method time
    first = call(portal, "crm.deal.list", token)
    assert first.json()["time"]["operating"] >= 0.6
    assert "operating_reset_at" in first.json()["time"]
    assert call(portal, "crm.deal.list", token).status_code == 200
    blocked = call(portal, "crm.deal.list", token)
    assert (blocked.status_code, blocked.json()["error"]) == (429, "OPERATION_TIME_LIMIT")
    assert call(portal, "crm.deal.fields", token).status_code == 200  # other methods keep working
    sim.clock.advance(601)
    assert call(portal, "crm.deal.list", token).status_code == 200

    multipart = httpx.post(
        portal.client_endpoint + "crm.deal.add",
        data={"auth": token, "fields[TITLE]": "multi part"},
        files={"attachment": ("a.txt", b"x")},
    )
    assert multipart.status_code == 200
    assert portal.deals.get(multipart.json()["result"])["TITLE"] == "multi part"  # type: ignore[index]


def test_batch_is_one_hit_with_references_and_halt(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("acme.bitrix24.com", rate=(3, 2))
    token = install_event(sim, portal, receiver)["access_token"]
    sim.time_scale = 0.0
    linked = call(
        portal,
        "batch",
        token,
        halt=0,
        cmd={
            "add": "crm.deal.add?fields[TITLE]=First",
            "get": "crm.deal.get?id=$result[add]",
            "list": "crm.deal.list?filter[%3EID]=0&select[]=TITLE",
            "bad": "no.such.method",
            "title": "crm.deal.update?id=$result[get][ID]&fields[COMMENTS]=from $result[get][TITLE]",
        },
    )
    assert linked.status_code == 200
    body = linked.json()["result"]
    assert body["result"]["add"] == 1
    assert body["result"]["get"]["TITLE"] == "First"
    assert body["result"]["list"] == [{"ID": "1", "TITLE": "First"}]
    assert body["result"]["title"] is True
    assert body["result_error"] == {
        "bad": {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}
    }
    assert body["result_total"] == {"list": 1}
    assert body["result_next"] == []
    assert set(body["result_time"]) == {"add", "get", "list", "title"}
    assert portal.deals.get(1)["COMMENTS"] == "from First"  # type: ignore[index]

    halted = call(
        portal, "batch", token, halt=1, cmd=["server.time", "batch?cmd[]=server.time", "server.time"]
    )
    result = halted.json()["result"]
    assert result["result"] == [result["result"][0]]
    assert result["result_error"] == {
        "1": {
            "error": "ERROR_BATCH_METHOD_NOT_ALLOWED",
            "error_description": "Method is not allowed for batch usage",
        }
    }

    # Two batches (eight sub-calls) used two hits of the three allowed.
    assert call(portal, "server.time", token).status_code == 200
    assert call(portal, "server.time", token).status_code == 503
    records = sim.calls_for(portal.domain)
    assert [(r.method, r.was_batch, r.subcalls) for r in records[:2]] == [
        ("batch", True, 5),
        ("batch", True, 2),
    ]

    sim.time_scale = 1.0
    sim.clock.advance(10)
    too_long = call(portal, "batch", token, cmd={f"c{i}": "server.time" for i in range(51)}).json()["result"]
    assert len(too_long["result"]) == 50
    assert too_long["result_error"]["c50"]["error"] == "ERROR_BATCH_LENGTH_EXCEEDED"


def test_deal_list_paging_filter_order_and_start_minus_one(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("acme.bitrix24.com")
    token = install_event(sim, portal, receiver)["access_token"]
    for i in range(120):
        portal.ui_deal_add({"TITLE": f"Deal {i:03}", "OPPORTUNITY": str(i)})
    first = call(portal, "crm.deal.list", token, select=["ID", "TITLE"]).json()
    assert (len(first["result"]), first["next"], first["total"]) == (50, 50, 120)
    last = call(portal, "crm.deal.list", token, start=100).json()
    assert len(last["result"]) == 20 and "next" not in last and last["total"] == 120
    page = call(
        portal, "crm.deal.list", token, filter={">ID": 100}, order={"ID": "ASC"}, select=["ID"], start=-1
    ).json()
    assert [d["ID"] for d in page["result"]] == [str(i) for i in range(101, 121)]
    assert page["total"] == 0 and "next" not in page
    top = call(
        portal, "crm.deal.list", token, order={"OPPORTUNITY": "DESC"}, filter={"<=OPPORTUNITY": 5}
    ).json()
    assert [d["OPPORTUNITY"] for d in top["result"]] == ["5", "4", "3", "2", "1", "0"]
    missing = call(portal, "crm.deal.get", token, id=999)
    assert (missing.status_code, missing.json()) == (400, {"error": "", "error_description": "Not found"})


# -- profiles ---------------------------------------------------------------------------------------
def test_box_lacks_telephony_until_enabled(sim: Simulator, receiver: Receiver) -> None:
    cloud = sim.add_portal("cloud.bitrix24.com")
    box = sim.add_portal("crm.example.com", profile="box")
    cloud_token = install_event(sim, cloud, receiver)["access_token"]
    box_token = install_event(sim, box, receiver)["access_token"]

    assert "telephony.externalcall.register" in call(cloud, "methods", cloud_token).json()["result"]
    assert "ONEXTERNALCALLSTART" in call(cloud, "events", cloud_token).json()["result"]

    assert (
        "telephony.externalcall.register" not in call(box, "methods", box_token, full=True).json()["result"]
    )
    assert "ONEXTERNALCALLSTART" not in call(box, "events", box_token, FULL=True).json()["result"]
    assert "telephony" not in call(box, "scope", box_token, full=True).json()["result"]
    assert call(box, "method.get", box_token, name="telephony.externalcall.register").json()["result"] == {
        "isExisting": False,
        "isAvailable": False,
    }
    assert (
        call(box, "method.get", box_token, name="im.notify.system.add").json()["result"]["isExisting"]
        is False
    )
    register = call(box, "telephony.externalcall.register", box_token, USER_ID=1, PHONE_NUMBER="+1", TYPE=1)
    assert register.status_code == 404
    bind = call(box, "event.bind", box_token, event="ONEXTERNALCALLSTART", handler=receiver.url + "/call")
    assert (bind.status_code, bind.json()["error"]) == (400, "ERROR_EVENT_NOT_FOUND")

    box.enable_module("telephony")  # the admin installs the update
    box_token = install_event(sim, box, receiver, scope=None)[
        "access_token"
    ]  # reinstall grants the new scope
    assert (
        call(
            box, "telephony.externalcall.register", box_token, USER_ID=1, PHONE_NUMBER="+1", TYPE=1
        ).status_code
        == 200
    )
    box.remove_method("telephony.externalcall.finish")
    assert (
        call(box, "method.get", box_token, name="telephony.externalcall.finish").json()["result"][
            "isExisting"
        ]
        is False
    )


# -- event queue ------------------------------------------------------------------------------------
def test_event_delivered_once_as_php_form_and_never_retried(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("acme.bitrix24.com")
    token = install_event(sim, portal, receiver)["access_token"]
    receiver.status["/events"] = 500
    bound = call(portal, "event.bind", token, event="onCrmDealUpdate", handler=receiver.url + "/events")
    assert bound.json()["result"] is True
    duplicate = call(portal, "event.bind", token, event="ONCRMDEALUPDATE", handler=receiver.url + "/events")
    assert duplicate.status_code == 400
    assert duplicate.json()["error"] == "ERROR_CORE"
    listed = call(portal, "event.get", token).json()["result"]
    assert listed == [
        {"event": "ONCRMDEALUPDATE", "handler": receiver.url + "/events", "auth_type": "0", "offline": 0}
    ]

    deal_id = portal.ui_deal_add({"TITLE": "x"})
    portal.ui_deal_update(deal_id, {"TITLE": "y"})
    assert sim.wait_idle(5)
    time.sleep(0.2)  # a retry would show up here

    posts = receiver.at("/events")
    assert len(posts) == 1
    post = posts[0]
    assert post.content_type == "application/x-www-form-urlencoded"
    assert post.keys == [
        "event",
        "event_handler_id",
        "data[FIELDS][ID]",
        "ts",
        "auth[access_token]",
        "auth[expires_in]",
        "auth[scope]",
        "auth[domain]",
        "auth[server_endpoint]",
        "auth[status]",
        "auth[client_endpoint]",
        "auth[member_id]",
        "auth[application_token]",
    ]
    form = post.form
    assert form["event"] == "ONCRMDEALUPDATE"
    assert form["data"] == {"FIELDS": {"ID": str(deal_id)}}
    assert form["auth"]["scope"] == "crm"
    assert form["auth"]["member_id"] == portal.member_id
    # The event's access token is a working token of the user who made the change.
    assert (
        call(portal, "crm.deal.get", form["auth"]["access_token"], id=deal_id).json()["result"]["TITLE"]
        == "y"
    )

    [delivery] = sim.deliveries_for(portal.domain, "ONCRMDEALUPDATE")
    assert (delivery.outcome, delivery.status, delivery.url) == ("delivered", 500, receiver.url + "/events")

    # A change made by a robot (no user) carries no tokens; REST changes fire events too.
    receiver.status["/events"] = 200
    portal.ui_deal_update(deal_id, {"TITLE": "z"}, user_id=None)
    call(portal, "crm.deal.update", token, id=deal_id, fields={"TITLE": "w"})
    assert sim.wait_idle(5)
    robot, rest = receiver.at("/events")[1:]
    assert robot.keys == [
        "event",
        "event_handler_id",
        "data[FIELDS][ID]",
        "ts",
        "auth[domain]",
        "auth[client_endpoint]",
        "auth[server_endpoint]",
        "auth[member_id]",
        "auth[application_token]",
    ]
    assert "access_token" in rest.form["auth"]


def test_event_test_delivers_onapptest(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("acme.bitrix24.com", language="de")
    token = install_event(sim, portal, receiver)["access_token"]
    call(portal, "event.bind", token, event="ONAPPTEST", handler=receiver.url + "/test")
    assert call(portal, "event.test", token, any="data").json()["result"] == 1
    assert sim.wait_idle(5)
    [post] = receiver.at("/test")
    assert post.form["data"] == {"QUERY": {"any": "data"}, "LANGUAGE_ID": "de"}
    assert post.form["event_handler_id"] == "1"


def test_queue_blocked_drops_deliveries(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("crm.example.com", profile="box", queue_blocked=True)
    assert sim.install(portal.domain, receiver.url + "/install", mode="event") is None
    assert receiver.requests == []
    token = sim.issue_tokens(portal.domain)["access_token"]
    call(portal, "event.bind", token, event="ONCRMDEALADD", handler=receiver.url + "/events")
    portal.ui_deal_add({"TITLE": "lost"})
    assert sim.wait_idle(5)
    assert receiver.requests == []
    assert [(d.event, d.outcome) for d in sim.deliveries_for(portal.domain)] == [
        ("ONAPPINSTALL", "blocked"),
        ("ONCRMDEALADD", "blocked"),
    ]
    # The portal's REST still works: offline events are the way out.
    call(portal, "event.bind", token, event="ONCRMDEALADD", event_type="offline")
    deal_id = portal.ui_deal_add({"TITLE": "kept"})
    got = call(portal, "event.offline.get", token, clear=0).json()["result"]
    assert [e["EVENT_NAME"] for e in got["events"]] == ["ONCRMDEALADD"]
    assert got["events"][0]["EVENT_DATA"] == {"FIELDS": {"ID": str(deal_id)}}
    assert call(portal, "event.offline.get", token, clear=0).json()["result"]["events"] == []
    call(portal, "event.offline.clear", token, process_id=got["process_id"])
    assert call(portal, "event.offline.list", token).json()["total"] == 0


def test_offline_auth_connector_breaks_cycles(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("acme.bitrix24.com")
    token = install_event(sim, portal, receiver)["access_token"]
    call(portal, "event.bind", token, event="ONCRMDEALUPDATE", event_type="offline", auth_connector="sync")
    deal_id = portal.ui_deal_add({})
    call(portal, "crm.deal.update", token, id=deal_id, fields={"TITLE": "mine"}, auth_connector="sync")
    assert call(portal, "event.offline.list", token, auth_connector="sync").json()["total"] == 0
    for title in ("a", "b", "c"):
        portal.ui_deal_update(deal_id, {"TITLE": title})
    listed = call(portal, "event.offline.list", token, auth_connector="sync").json()
    assert listed["total"] == 1  # one record per changed object
    assert call(portal, "event.offline.list", token).json()["total"] == 0  # other queue


# -- install / update / uninstall -------------------------------------------------------------------
def test_install_ui_frame_shape_and_install_finish(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("acme.bitrix24.com", language="de")
    response = sim.install(portal.domain, receiver.url + "/app/install?x=1", mode="ui", finish=False)
    assert response is not None and response.status_code == 200
    [frame] = receiver.at("/app/install")
    assert set(frame.query) == {"x", "DOMAIN", "PROTOCOL", "LANG", "APP_SID"}
    assert (frame.query["DOMAIN"], frame.query["PROTOCOL"], frame.query["LANG"]) == (portal.domain, "0", "de")
    assert frame.keys == [
        "AUTH_ID",
        "AUTH_EXPIRES",
        "REFRESH_ID",
        "SERVER_ENDPOINT",
        "APPLICATION_TOKEN",
        "APPLICATION_SCOPE",
        "member_id",
        "status",
        "PLACEMENT",
    ]
    form = frame.form
    assert (form["PLACEMENT"], form["AUTH_EXPIRES"], form["member_id"]) == (
        "DEFAULT",
        "3600",
        portal.member_id,
    )
    assert form["SERVER_ENDPOINT"] == sim.oauth_url + "/rest/"
    token = form["AUTH_ID"]
    assert call(portal, "app.info", token).json()["result"]["INSTALLED"] is False
    call(portal, "event.bind", token, event="ONCRMDEALADD", handler=receiver.url + "/events")
    portal.ui_deal_add({})
    assert sim.wait_idle(5)
    assert receiver.at("/events") == []  # nothing is sent before installFinish
    assert sim.deliveries_for(portal.domain)[-1].outcome == "suppressed"

    sim.install_finish(portal.domain)
    info = call(portal, "app.info", token).json()["result"]
    assert set(info) >= {"ID", "CODE", "VERSION", "STATUS", "INSTALLED", "PAYMENT_EXPIRED", "DAYS", "LICENSE"}
    assert info["INSTALLED"] is True
    portal.ui_deal_add({})
    assert sim.wait_idle(5)
    assert len(receiver.at("/events")) == 1


def test_install_event_shape(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("acme.bitrix24.com")
    install_event(sim, portal, receiver, scope="crm,user")
    [post] = receiver.at("/install")
    assert post.content_type == "application/x-www-form-urlencoded"
    assert post.keys == [
        "event",
        "data[VERSION]",
        "data[ACTIVE]",
        "data[INSTALLED]",
        "data[LANGUAGE_ID]",
        "ts",
        "auth[domain]",
        "auth[scope]",
        "auth[access_token]",
        "auth[refresh_token]",
        "auth[expires_in]",
        "auth[server_endpoint]",
        "auth[status]",
        "auth[client_endpoint]",
        "auth[member_id]",
        "auth[application_token]",
    ]
    form = post.form
    assert form["event"] == "ONAPPINSTALL"
    assert form["data"] == {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "en"}
    assert form["auth"]["scope"] == "crm,user"
    assert form["auth"]["client_endpoint"] == portal.client_endpoint


def test_update_and_uninstall(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("acme.bitrix24.com")
    auth = install_event(sim, portal, receiver)
    token = auth["access_token"]
    call(portal, "event.bind", token, event="ONAPPUNINSTALL", handler=receiver.url + "/uninstall")
    call(portal, "event.bind", token, event="ONCRMDEALADD", handler=receiver.url + "/events")

    response = sim.update_app(portal.domain, receiver.url + "/update")
    assert response is not None and response.status_code == 200
    [update] = receiver.at("/update")
    assert update.form["event"] == "ONAPPUPDATE"
    assert update.form["data"] == {"VERSION": "2", "PREVIOUS_VERSION": "1", "LANGUAGE_ID": "en"}
    assert update.form["auth"]["application_token"] != auth["application_token"]
    assert call(portal, "event.get", token).json()["result"] == []  # bindings dropped on update

    call(portal, "event.bind", token, event="ONAPPUNINSTALL", handler=receiver.url + "/uninstall")
    response = sim.uninstall(portal.domain, clean=False)
    assert response is not None
    [gone] = receiver.at("/uninstall")
    assert gone.form["data"] == {"LANGUAGE_ID": "en", "CLEAN": "0"}
    assert gone.form["event_handler_id"]
    assert set(gone.form["auth"]) == {
        "domain",
        "server_endpoint",
        "client_endpoint",
        "member_id",
        "application_token",
    }
    assert gone.form["auth"]["application_token"] == update.form["auth"]["application_token"]
    assert call(portal, "server.time", token).json()["error"] == "NO_AUTH_FOUND"
    # settings/oauth/error-codes.md: "invalid_client ... the application may not be installed"
    assert refresh(sim, update.form["auth"]["refresh_token"]).json()["error"] == "invalid_client"


# -- control API and log hygiene --------------------------------------------------------------------
def test_control_api(sim: Simulator, receiver: Receiver) -> None:
    portal = sim.add_portal("acme.bitrix24.com", profile="box")
    token = install_event(sim, portal, receiver)["access_token"]
    call(portal, "event.bind", token, event="ONCRMDEALADD", handler=receiver.url + "/events")
    [listed] = httpx.get(sim.url + "/_sim/portals").json()
    assert {k: listed[k] for k in ("domain", "member_id", "profile", "installed", "queue_blocked")} == {
        "domain": portal.domain,
        "member_id": portal.member_id,
        "profile": "box",
        "installed": True,
        "queue_blocked": False,
    }
    created = httpx.post(f"{sim.url}/_sim/portals/{portal.domain}/deals", json={"TITLE": "from curl"})
    deal_id = created.json()["id"]
    assert (
        httpx.post(f"{sim.url}/_sim/portals/{portal.domain}/deals/{deal_id}", json={"TITLE": "t"}).status_code
        == 200
    )
    assert httpx.delete(f"{sim.url}/_sim/portals/{portal.domain}/deals/{deal_id}").status_code == 200
    assert sim.wait_idle(5)
    deliveries = httpx.get(sim.url + "/_sim/deliveries").json()
    assert [d["event"] for d in deliveries] == ["ONAPPINSTALL", "ONCRMDEALADD"]
    assert "body" not in deliveries[0] and "payload" not in deliveries[0]
    assert httpx.get(sim.url + "/_sim/nothing").status_code == 404


def test_no_secrets_in_logs(sim: Simulator, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="b24sim")
    portal = sim.add_portal("acme.bitrix24.com")
    auth = install_event(sim, portal, receiver)
    token = auth["access_token"]
    httpx.get(portal.client_endpoint + "server.time", params={"auth": token})
    call(portal, "event.bind", token, event="ONCRMDEALADD", handler=receiver.url + "/events")
    portal.ui_deal_add({})
    fresh = refresh(sim, auth["refresh_token"]).json()
    refresh(sim, auth["refresh_token"])
    assert sim.wait_idle(5)
    text = caplog.text + repr(sim.deliveries) + repr(portal.app)
    assert "server.time" in caplog.text
    for secret in (
        token,
        auth["refresh_token"],
        auth["application_token"],
        fresh["access_token"],
        CLIENT_SECRET,
    ):
        assert secret not in text
