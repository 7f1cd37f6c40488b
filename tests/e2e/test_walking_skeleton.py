"""install → portal stored → a CRM change in the portal → verified, queued, handled: end to end."""

from __future__ import annotations

from b24core.portals.states import PortalState, TokenState
from tests.e2e.conftest import wait_for


def test_cloud_install_through_the_frame_is_verified_stored_and_bound(sim, stack, store, install_url):
    portal = sim.add_portal(profile="cloud")
    resp = sim.install(portal.domain, install_url, mode="ui")
    assert resp is not None and resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "BX24.installFinish" in resp.text
    assert "content-security-policy" in resp.headers
    stored = store.get(portal.member_id)
    assert stored.state == PortalState.ACTIVE and stored.token_state == TokenState.ACTIVE
    assert stored.install_path == "ui" and stored.client_endpoint == portal.client_endpoint
    assert stored.capabilities["features"]["crm"]["available"] is True
    bound = {(b.event, b.handler) for b in portal.bindings}
    assert ("ONCRMDEALUPDATE", f"{stack.gateway_url}/events") in bound
    # the page never carries a token
    for secret in sim.issued_secrets():
        assert secret not in resp.text


def test_box_install_through_onappinstall_records_what_the_box_lacks(sim, stack, store, install_url):
    box = sim.add_portal(profile="box")
    resp = sim.install(box.domain, install_url, mode="event")
    assert resp is not None and resp.status_code == 200
    body = resp.json()
    assert body["installed"] is True and body["member_id"] == box.member_id
    stored = store.get(box.member_id)
    assert stored.install_path == "event" and stored.application_token
    telephony = stored.capabilities["features"]["telephony"]
    assert telephony["available"] is False
    assert "telephony.externalcall.register" in telephony["missing_methods"]
    assert stored.capabilities["features"]["crm"]["available"] is True
    assert not any(b.event == "ONEXTERNALCALLSTART" for b in box.bindings)


def test_crm_changes_in_the_portal_reach_the_registered_handler(sim, stack, mirror, install_url):
    portal = sim.add_portal(profile="cloud")
    assert sim.install(portal.domain, install_url, mode="ui").status_code == 200
    deal_id = portal.ui_deal_add({"TITLE": "Alpha"})
    wait_for(
        lambda: (mirror.get(portal.member_id, str(deal_id)) or {}).get("TITLE") == "Alpha",
        what="the added deal in the mirror",
    )
    portal.ui_deal_update(deal_id, {"TITLE": "Beta"})
    wait_for(
        lambda: (mirror.get(portal.member_id, str(deal_id)) or {}).get("TITLE") == "Beta",
        what="the updated deal in the mirror",
    )
    portal.ui_deal_delete(deal_id)
    wait_for(lambda: mirror.get(portal.member_id, str(deal_id)) is None, what="the deleted deal gone")
    delivered = [d for d in sim.deliveries_for(portal.domain) if d.event.startswith("ONCRMDEAL")]
    assert delivered and all(d.status == 200 for d in delivered)


def test_an_expired_access_token_is_refreshed_at_the_auth_server_and_the_event_still_handled(
    sim, stack, store, mirror, install_url
):
    portal = sim.add_portal(profile="cloud")
    assert sim.install(portal.domain, install_url, mode="ui").status_code == 200
    before = store.get(portal.member_id)
    sim.expire_access_tokens(portal.domain)
    deal_id = portal.ui_deal_add({"TITLE": "After expiry"})
    wait_for(lambda: mirror.get(portal.member_id, str(deal_id)) is not None, what="deal read after refresh")
    after = store.get(portal.member_id)
    assert after.refresh_token != before.refresh_token
    refreshes = [r for r in sim.oauth.requests if r.kind == "token" and r.member_id == portal.member_id]
    assert len(refreshes) == 1


def test_health_is_ok_when_every_part_is_ready(stack):
    import httpx

    resp = httpx.get(f"{stack.gateway_url}/health")
    assert resp.status_code == 200 and resp.json()["status"] == "ok"


def test_uninstall_marks_the_portal_deleted_and_erases_tokens(sim, stack, store, install_url):
    portal = sim.add_portal(profile="cloud")
    assert sim.install(portal.domain, install_url, mode="ui").status_code == 200
    sim.uninstall(portal.domain, None, clean=True)  # to the handler the app bound for ONAPPUNINSTALL
    stored = wait_for(
        lambda: (p := store.get(portal.member_id)) and p.state == PortalState.DELETED and p,
        what="portal marked deleted",
    )
    assert stored.token_state == TokenState.UNINSTALLED
    assert not stored.access_token and not stored.refresh_token and not stored.application_token
    # reinstall works
    assert sim.install(portal.domain, install_url, mode="ui").status_code == 200
    assert store.get(portal.member_id).state == PortalState.ACTIVE
