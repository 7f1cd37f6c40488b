"""Update, uninstall and reinstall against the simulator, through the app's own bound handlers.

ONAPPUPDATE brings a new application_token: it is kept only after the authorization server vouched
for the event's token, then the portal is re-checked and re-bound (the platform drops bindings on
update). ONAPPUNINSTALL erases the tokens; with data[CLEAN]=1 it also deletes the portal's data.
"""

from __future__ import annotations

import secrets

import httpx
import pytest

from b24core.bitrix.forms import encode_form
from b24core.capabilities.store import DynamoCapabilityStore
from b24core.portals.sealing import token_matches
from b24core.portals.states import PortalState, TokenState
from tests.e2e.conftest import wait_for

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def caps(stack) -> DynamoCapabilityStore:
    return DynamoCapabilityStore(stack.resources["AppTable"], stack.region, stack.dynamodb_endpoint)


def installed(sim, install_url, profile="cloud"):
    portal = sim.add_portal(profile=profile)
    assert (
        sim.install(portal.domain, install_url, mode="ui", scope="crm,im,telephony,user").status_code == 200
    )
    return portal


def test_an_update_keeps_the_verified_new_token_rechecks_and_rebinds(sim, stack, store, mirror, install_url):
    portal = installed(sim, install_url)
    resp = sim.update_app(portal.domain)  # delivered to the ONAPPUPDATE handler the app bound
    assert resp is not None and resp.status_code == 200, resp.text if resp is not None else None
    assert resp.json()["status"] == "updated"
    stored = store.get(portal.member_id)
    is_new = token_matches(stored.application_token, portal.app.application_token)
    assert is_new, "the stored application_token is not the one ONAPPUPDATE brought"
    assert stored.app_version == "2"
    # the platform dropped every binding; the re-check started by the update binds them again
    wait_for(
        lambda: {"ONCRMDEALADD", "ONAPPUPDATE", "ONAPPUNINSTALL"} <= {b.event for b in portal.bindings},
        what="events bound again after the update",
    )
    wait_for(lambda: store.get(portal.member_id).capabilities.get("trigger") == "update", what="update check")
    # events signed with the new token are accepted and handled
    deal_id = portal.ui_deal_add({"TITLE": "After update"})
    wait_for(
        lambda: mirror.get(portal.member_id, str(deal_id)) is not None, what="deal mirrored after update"
    )


def test_a_forged_update_changes_nothing(sim, stack, store, install_url, events_url):
    portal = installed(sim, install_url)
    before = store.get(portal.member_id).application_token
    forged = {
        "event": "ONAPPUPDATE",
        "data": {"VERSION": "9"},
        "auth": {
            "access_token": secrets.token_hex(16),  # not a token the authorization server issued
            "refresh_token": secrets.token_hex(16),
            "application_token": "forged-application-token",
            "member_id": portal.member_id,
            "domain": portal.domain,
            "client_endpoint": portal.client_endpoint,
        },
    }
    resp = httpx.post(events_url, content=encode_form(forged), headers=FORM)
    assert resp.status_code == 401 and resp.json()["error"] == "token_rejected"
    unchanged = store.get(portal.member_id).application_token == before
    assert unchanged, "a forged update replaced the application_token"
    event = {"event": "ONCRMDEALADD", "data": {"FIELDS": {"ID": "1"}}, "auth": forged["auth"]}
    assert httpx.post(events_url, content=encode_form(event), headers=FORM).status_code == 403


def test_uninstall_with_clean_deletes_the_portals_data_and_reinstall_works(
    sim, stack, store, mirror, caps, install_url
):
    portal = installed(sim, install_url)
    deal_id = portal.ui_deal_add({"TITLE": "Kept until uninstall"})
    wait_for(lambda: mirror.get(portal.member_id, str(deal_id)) is not None, what="deal mirrored")
    assert caps.history(portal.member_id)
    resp = sim.uninstall(portal.domain, None, clean=True)  # to the ONAPPUNINSTALL handler the app bound
    assert resp is not None and resp.status_code == 200
    stored = store.get(portal.member_id)
    assert stored.state == PortalState.DELETED and stored.token_state == TokenState.UNINSTALLED
    assert not stored.access_token and not stored.refresh_token and not stored.application_token
    assert stored.capabilities == {}
    assert mirror.get(portal.member_id, str(deal_id)) is None
    assert caps.history(portal.member_id) == [] and caps.recheck_due_at(portal.member_id) is None

    assert sim.install(portal.domain, install_url, mode="ui").status_code == 200
    again = store.get(portal.member_id)
    assert (
        again.state == PortalState.ACTIVE and again.capabilities["features"]["crm"]["status"] == "available"
    )
    deal_id = portal.ui_deal_add({"TITLE": "After reinstall"})
    wait_for(
        lambda: mirror.get(portal.member_id, str(deal_id)) is not None, what="deal mirrored after reinstall"
    )


def test_uninstall_without_clean_erases_tokens_but_keeps_the_data(
    sim, stack, store, mirror, caps, install_url
):
    portal = installed(sim, install_url, profile="box")
    deal_id = portal.ui_deal_add({"TITLE": "Kept"})
    wait_for(lambda: mirror.get(portal.member_id, str(deal_id)) is not None, what="deal mirrored")
    assert sim.uninstall(portal.domain, None, clean=False).status_code == 200
    stored = store.get(portal.member_id)
    assert stored.state == PortalState.DELETED and not stored.refresh_token
    assert mirror.get(portal.member_id, str(deal_id)) is not None
    assert caps.history(portal.member_id) and caps.recheck_due_at(portal.member_id) is None
