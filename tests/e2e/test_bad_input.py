"""Bad input at /install and /events: a clear 4xx JSON error, nothing stored, nothing enqueued."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

import httpx
import pytest

from b24core.bitrix.forms import encode_form
from tests.e2e.conftest import wait_for

FORM = {"content-type": "application/x-www-form-urlencoded"}


def accepted_count(stack) -> int:
    """Events that reached the worker through the queue (each one is logged once at dispatch)."""
    stack.wait_idle(timeout=20)
    log = stack.logs_dir / "EventWorkerFunction.log"
    return log.read_text().count('"action":"dispatch"') if log.exists() else 0


def queue_depth(stack) -> int:
    attrs = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.resources["EventsQueue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture(scope="module")
def installed(sim, stack):
    portal = sim.add_portal(profile="cloud")
    assert sim.install(portal.domain, f"{stack.gateway_url}/install", mode="ui").status_code == 200
    # One genuine event first, so "nothing more was accepted" below is measured against real traffic.
    before = accepted_count(stack)
    portal.ui_deal_add({"TITLE": "genuine"})
    wait_for(lambda: accepted_count(stack) > before, what="a genuine event accepted")
    return portal


def frame_request(domain: str, member_id: str, token: str, protocol: str = "0") -> tuple[str, str]:
    query = urlencode({"DOMAIN": domain, "PROTOCOL": protocol, "LANG": "en", "APP_SID": "x"})
    body = urlencode(
        {
            "AUTH_ID": token,
            "AUTH_EXPIRES": "3600",
            "REFRESH_ID": secrets.token_hex(16),
            "APPLICATION_TOKEN": secrets.token_hex(16),
            "member_id": member_id,
            "status": "F",
            "PLACEMENT": "DEFAULT",
        }
    )
    return query, body


def assert_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["error"] == code
    assert "Traceback" not in resp.text


# ---------------------------------------------------------------- /install


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("member_id=abc", 400, "missing_fields"),
        ("event=ONAPPINSTALL&auth[member_id]=abc", 400, "missing_fields"),
        ("event=ONCRMDEALADD", 400, "unexpected_event"),
        ("a]=1", 400, "bad_form"),
        ("a=1&a[b]=2", 400, "bad_form"),
    ],
)
def test_malformed_install_requests_get_a_clear_400(stack, store, body, status, code):
    resp = httpx.post(f"{stack.gateway_url}/install", content=body, headers=FORM)
    assert_error(resp, status, code)
    assert store.get("abc") is None


def test_install_with_a_token_the_auth_server_rejects_stores_nothing(sim, stack, store):
    portal = sim.add_portal(profile="cloud")
    query, body = frame_request(portal.domain, portal.member_id, secrets.token_hex(16))
    resp = httpx.post(f"{stack.gateway_url}/install?{query}", content=body, headers=FORM)
    assert_error(resp, 401, "token_rejected")
    assert store.get(portal.member_id) is None


def test_install_claiming_another_portal_with_a_valid_token_is_refused(sim, stack, store, installed):
    victim = sim.add_portal(profile="cloud")
    token = sim.issue_tokens(installed.domain)["access_token"]
    query, body = frame_request(victim.domain, victim.member_id, token)
    resp = httpx.post(f"{stack.gateway_url}/install?{query}", content=body, headers=FORM)
    assert_error(resp, 403, "claim_mismatch")
    assert store.get(victim.member_id) is None


def test_onappinstall_with_an_endpoint_that_does_not_match_is_refused(sim, stack, store):
    portal = sim.add_portal(profile="cloud")
    other = sim.add_portal(profile="cloud")
    sim.install(portal.domain, f"{stack.gateway_url}/install", mode="ui", finish=False)
    tokens = sim.issue_tokens(portal.domain)
    before = store.get(portal.member_id)
    form = {
        "event": "ONAPPINSTALL",
        "auth": {
            "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "application_token": secrets.token_hex(16),
            "member_id": portal.member_id,
            "domain": portal.domain,
            "client_endpoint": other.client_endpoint,
            "expires_in": "3600",
        },
    }
    resp = httpx.post(f"{stack.gateway_url}/install", content=encode_form(form), headers=FORM)
    assert_error(resp, 403, "claim_mismatch")
    assert store.get(portal.member_id) == before


def test_oversized_and_wrongly_typed_bodies_are_refused_before_parsing(stack):
    resp = httpx.post(f"{stack.gateway_url}/install", content="a=" + "x" * 300_000, headers=FORM)
    assert_error(resp, 413, "payload_too_large")
    resp = httpx.post(
        f"{stack.gateway_url}/events", content='{"event": "x"}', headers={"content-type": "application/json"}
    )
    assert_error(resp, 415, "unsupported_media_type")


# ---------------------------------------------------------------- /events


def event_body(portal, app_token: str | None, member_id: str | None = None) -> str:
    auth = {
        "domain": portal.domain,
        "client_endpoint": portal.client_endpoint,
        "member_id": member_id or portal.member_id,
    }
    if app_token is not None:
        auth["application_token"] = app_token
    return encode_form(
        {
            "event": "ONCRMDEALUPDATE",
            "event_handler_id": "1",
            "data": {"FIELDS": {"ID": "1"}},
            "ts": "1",
            "auth": auth,
        }
    )


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("wrong_token", 403, "application_token_mismatch"),
        ("missing_token", 401, "missing_application_token"),
        ("unknown_member", 401, "unknown_portal"),
        ("no_auth", 401, "missing_auth"),
        ("malformed", 400, "bad_form"),
    ],
)
def test_forged_and_malformed_events_are_refused_and_not_enqueued(stack, installed, case, status, code):
    stack.wait_idle(timeout=20)
    accepted_before = accepted_count(stack)
    assert accepted_before > 0, "the installed portal's own traffic must show up, or this check is vacuous"
    body = {
        "wrong_token": lambda: event_body(installed, secrets.token_hex(16)),
        "missing_token": lambda: event_body(installed, None),
        "unknown_member": lambda: event_body(
            installed, secrets.token_hex(16), member_id=secrets.token_hex(16)
        ),
        "no_auth": lambda: "event=ONCRMDEALUPDATE&data[FIELDS][ID]=1",
        "malformed": lambda: "event=ONCRMDEALUPDATE&auth]=1",
    }[case]()
    resp = httpx.post(f"{stack.gateway_url}/events", content=body, headers=FORM)
    assert_error(resp, status, code)
    assert accepted_count(stack) == accepted_before
    assert queue_depth(stack) == 0
