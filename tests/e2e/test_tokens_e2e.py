"""Token custody through the whole local stack: a lost portal is flagged (with the alarm's metric) and
heals when its admin opens the app; `b24app tokens status|refresh|sweep`; the scheduled sweep."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace

import pytest

from b24cli.main import main
from b24core.bitrix.oauth import AuthServer
from b24core.portals.states import TokenState
from tests.e2e.conftest import CLIENT_ID, wait_for

DAY = 24 * 3600


@pytest.fixture
def cli(stack, monkeypatch, capsys):
    monkeypatch.delenv("B24_STACK_NAME", raising=False)
    monkeypatch.delenv("B24_TABLE_NAME", raising=False)
    monkeypatch.setenv("B24_LOCAL_STATE_DIR", str(stack.state_dir))

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _installed(sim, stack, store, install_url):
    portal = sim.add_portal(profile="cloud")
    assert sim.install(portal.domain, install_url, mode="ui").status_code == 200
    stack.wait_idle()  # the capability check that follows an install has used the fresh token
    return portal, store.get(portal.member_id)


def _token_requests(sim, member_id):
    return [r.outcome for r in list(sim.oauth.requests) if r.kind == "token" and r.member_id == member_id]


def test_a_dead_refresh_token_is_flagged_alarmed_and_heals_when_the_admin_opens_the_app(
    sim, stack, store, mirror, install_url
):
    portal, stored = _installed(sim, stack, store, install_url)
    AuthServer(sim.oauth_url).refresh(CLIENT_ID, sim._client_secret, stored.refresh_token)  # spent elsewhere
    sim.expire_access_tokens(portal.domain)
    portal.ui_deal_add({"TITLE": "while lost"})
    lost = wait_for(
        lambda: (p := store.get(portal.member_id)).token_state == TokenState.REAUTH_REQUIRED and p,
        what="the portal marked reauth_required",
    )
    assert lost.token_state_reason == "invalid_grant" and lost.refresh_token == stored.refresh_token
    assert _token_requests(sim, portal.member_id) == ["ok", "invalid_grant"]

    # The alarm's metric: EMF with exactly the dimensions ReauthRequiredAlarm watches. The record is
    # saved before the function flushes its metrics at the end of the invocation, so wait for the line.
    def emf() -> list[dict]:
        found = []
        for path in stack.logs_dir.rglob("*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if '"TokenStateEntered"' in line and line.startswith("{"):
                    try:
                        found.append(json.loads(line))
                    except ValueError:  # a line still being written
                        continue
        return found

    assert wait_for(
        lambda: any(
            m.get("state") == "reauth_required"
            and m.get("service") == "b24app"
            and m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "B24App"
            for m in emf()
        ),
        what="the TokenStateEntered metric",
    )
    # The admin opens the app: the install page gets a fresh pair, verified at the auth server.
    assert sim.open_app(portal.domain, f"{stack.gateway_url}/install").status_code == 200
    healed = store.get(portal.member_id)
    assert healed.token_state == TokenState.ACTIVE and healed.refresh_token != stored.refresh_token
    assert healed.token_state_reason == "verified_pair"
    back = [
        json.loads(line)
        for path in stack.logs_dir.rglob("InstallFunction.log")
        for line in path.read_text(errors="replace").splitlines()
        if '"TokenStateEntered"' in line and line.startswith("{")
    ]
    assert any(m.get("state") == "active" for m in back)  # the way back is counted too
    deal_id = portal.ui_deal_add({"TITLE": "after healing"})
    wait_for(lambda: mirror.get(portal.member_id, str(deal_id)) is not None, what="the deal handled again")


def test_tokens_status_refresh_and_sweep_from_the_cli(sim, stack, store, install_url, cli):
    portal, stored = _installed(sim, stack, store, install_url)
    code, out, _ = cli("tokens", "status", "--json")
    assert code == 0
    before = json.loads(out)
    assert before["states"]["active"] >= 1

    # Manual refresh right after the install: refused (never twice within a day), nothing sent.
    code, out, err = cli("tokens", "refresh", portal.member_id)
    assert code == 1 and "too_soon" in out
    assert _token_requests(sim, portal.member_id) == []

    # Two portals whose last refresh is 40 days old are due; the sweep refreshes them, once each.
    aged = [portal, _installed(sim, stack, store, install_url)[0]]
    for p in aged:
        current = store.get(p.member_id)
        store.save(replace(current, refreshed_at=int(time.time()) - 40 * DAY))
    code, out, _ = cli("tokens", "status")
    assert code == 0 and "portals by token state" in out and "oldest refresh" in out
    code, out, _ = cli("tokens", "status", "--json")
    assert json.loads(out)["due"]["keepalive"] >= 2
    code, out, err = cli("tokens", "sweep", "--batch", "1")
    assert code == 0, err
    assert "[" in err and "refreshed" in err  # the progress bar went to stderr
    swept = re.search(r"refreshed (\d+), failed (\d+)", out)
    assert swept and int(swept.group(1)) >= 2 and swept.group(2) == "0"
    for p in aged:
        assert _token_requests(sim, p.member_id) == ["ok"]
        assert store.get(p.member_id).refreshed_at >= int(time.time()) - 60
    code, out, _ = cli("tokens", "status", "--json")
    assert json.loads(out)["due"]["keepalive"] == 0

    code, out, err = cli("tokens", "refresh", "no-such-member")
    assert code == 1 and "unknown_portal" in err
    for secret in sim.issued_secrets():
        assert secret not in out


def test_the_scheduled_sweep_and_census_run_in_the_token_refresh_function(sim, stack, store, install_url):
    portal, stored = _installed(sim, stack, store, install_url)
    store.save(replace(store.get(portal.member_id), refreshed_at=int(time.time()) - 45 * DAY))
    report = stack.fire_schedule("TokenRefreshFunction", "Sweep")
    assert report["refreshed"] >= 1 and report["done"] is True
    assert _token_requests(sim, portal.member_id) == ["ok"]
    census = stack.fire_schedule("TokenRefreshFunction", "Census")
    assert census["states"]["active"] >= 1 and census["due"]["keepalive"] == 0


def test_a_verified_onofflineevent_carrying_a_fresh_pair_heals_a_lost_portal_through_the_intake(
    sim, stack, store, install_url
):
    import httpx

    from b24core.bitrix.forms import encode_form

    portal, stored = _installed(sim, stack, store, install_url)
    AuthServer(sim.oauth_url).refresh(CLIENT_ID, sim._client_secret, stored.refresh_token)  # spent elsewhere
    sim.expire_access_tokens(portal.domain)
    portal.ui_deal_add({"TITLE": "while lost"})
    wait_for(lambda: store.get(portal.member_id).token_state == TokenState.REAUTH_REQUIRED, what="lost")
    fresh = sim.issue_tokens(portal.domain)  # what Bitrix24 puts in ONOFFLINEEVENT's auth
    form = {
        "event": "ONOFFLINEEVENT",
        "data": {"event_name": "ONCRMDEALUPDATE"},
        "ts": "1",
        "auth": {
            "access_token": fresh["access_token"],
            "refresh_token": fresh["refresh_token"],
            "expires_in": "3600",
            "member_id": portal.member_id,
            "domain": portal.domain,
            "client_endpoint": portal.client_endpoint,
            "application_token": portal.app.application_token,  # the table keeps only its hash
        },
    }
    resp = httpx.post(
        f"{stack.gateway_url}/events",
        content=encode_form(form),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200, resp.text
    healed = store.get(portal.member_id)
    assert healed.token_state == TokenState.ACTIVE and healed.refresh_token == fresh["refresh_token"]


def test_an_operators_refresh_of_a_portal_whose_refresh_failed_is_honoured(
    sim, stack, store, install_url, cli
):
    portal, stored = _installed(sim, stack, store, install_url)
    sim.oauth.down = True  # the authorization server is briefly down when the access token expires
    try:
        sim.expire_access_tokens(portal.domain)
        portal.ui_deal_add({"TITLE": "while the auth server is down"})
        wait_for(
            lambda: store.get(portal.member_id).token_state == TokenState.REFRESH_FAILING,
            what="the portal marked refresh_failing",
        )
    finally:
        sim.oauth.down = False
    # Minutes after the install (within the one-day minimum): the operator's refresh is what it needs.
    code, out, err = cli("tokens", "refresh", portal.member_id)
    assert code == 0, out + err
    assert "refreshed" in out and "too_soon" not in out
    healed = store.get(portal.member_id)
    assert healed.token_state == TokenState.ACTIVE and healed.refresh_token != stored.refresh_token
    assert _token_requests(sim, portal.member_id)[-1] == "ok"


def test_a_lost_onappuninstall_is_found_by_the_sweep_and_the_portal_uninstalled(
    sim, stack, store, install_url
):
    from b24core.capabilities.store import DynamoCapabilityStore
    from b24core.portals.states import PortalState

    portal, stored = _installed(sim, stack, store, install_url)
    caps = DynamoCapabilityStore(stack.resources["AppTable"], stack.region, stack.dynamodb_endpoint)
    caps.schedule_recheck(portal.member_id, int(time.time()) + DAY)
    # The app is removed; its ONAPPUNINSTALL goes nowhere (Bitrix24 never retries it).
    sim.uninstall(portal.domain, "http://127.0.0.1:9/events", clean=False)
    assert store.get(portal.member_id).state == PortalState.ACTIVE
    store.save(replace(store.get(portal.member_id), refreshed_at=int(time.time()) - 45 * DAY))
    stack.fire_schedule("TokenRefreshFunction", "Sweep")
    gone = store.get(portal.member_id)
    assert gone.state == PortalState.DELETED and gone.token_state == TokenState.UNINSTALLED
    assert gone.token_state_reason == "not_installed"
    assert gone.access_token == gone.refresh_token == ""
    assert caps.recheck_due_at(portal.member_id) is None  # no re-checks of a portal that is gone
    assert set(_token_requests(sim, portal.member_id)) == {"invalid_client"}
    # Nothing asks the authorization server about it again.
    before = len(_token_requests(sim, portal.member_id))
    stack.fire_schedule("TokenRefreshFunction", "Sweep")
    assert len(_token_requests(sim, portal.member_id)) == before
