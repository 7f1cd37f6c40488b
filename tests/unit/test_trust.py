"""Who may change what the app trusts: only an administrator's verified token; users get sessions."""

from __future__ import annotations

import pytest

from b24core.aws.apigw import HttpError
from b24core.aws.metrics import record_metrics
from b24core.bitrix.inbound import claim_from_event, claim_from_request
from b24core.portals.states import TokenState
from b24core.tokens.outcomes import Outcome
from b24core.trust.admin import Caller
from b24core.trust.session import SessionInvalid, issue, session_key, verify
from tests.unit._token_fakes import make_keeper, make_portal
from tests.unit.test_install_service import (
    ScriptedAuthServer,
    ScriptedPortal,
    event_form,
    frame,
    info,
    service,
)
from tests.unit.test_install_update import update_form


def _installed_by_admin():
    portal = ScriptedPortal(admin=True)
    svc, store = service(ScriptedAuthServer(info()), portal)
    svc.install(claim_from_request(*frame()))
    return svc, store, portal


def test_an_ordinary_users_frame_opens_the_app_and_changes_nothing():
    svc, store, portal = _installed_by_admin()
    before = store.get("m1")
    portal.admin = False
    opened = svc.open(claim_from_request(*frame(AUTH_ID="user-at-1", REFRESH_ID="user-rt-1")))
    assert not opened.admin and not opened.stored and opened.user_id == "1"
    assert store.get("m1") == before  # same tokens, same version: nothing written


def test_an_ordinary_users_frame_with_its_own_application_token_is_refused():
    svc, store, portal = _installed_by_admin()
    before = store.get("m1")
    portal.admin = False
    forged = frame(AUTH_ID="user-at-1", REFRESH_ID="user-rt-1", APPLICATION_TOKEN="chosen-by-attacker")
    with record_metrics() as m, pytest.raises(HttpError) as err:
        svc.open(claim_from_request(*forged))
    assert err.value.status == 403 and err.value.code == "application_token_mismatch"
    assert store.get("m1") == before
    assert m.total("TrustChangesRefused", reason="application_token_mismatch") == 1


def test_only_an_administrator_installs():
    svc, store = service(ScriptedAuthServer(info()), ScriptedPortal(admin=False))
    with pytest.raises(HttpError) as err:
        svc.open(claim_from_request(*frame()))
    assert err.value.status == 403 and store.get("m1") is None
    with pytest.raises(HttpError) as err:
        svc.install(claim_from_event(event_form()))
    assert err.value.status == 403 and store.get("m1") is None


def test_an_administrators_reinstall_may_bring_a_new_application_token():
    svc, store, _ = _installed_by_admin()
    svc.open(claim_from_request(*frame(APPLICATION_TOKEN="app-after-reinstall")))
    stored = store.get("m1")
    assert stored.application_token == "app-after-reinstall" and stored.user_admin


def test_an_update_needs_an_administrator_and_a_new_version():
    svc, store, portal = _installed_by_admin()
    before = store.get("m1")
    portal.version = "2"
    portal.admin = False
    with pytest.raises(HttpError) as err:
        svc.update(claim_from_event(update_form(), path="update"), "2")
    assert err.value.status == 403 and store.get("m1") == before
    portal.admin, portal.version = True, "1"  # a replay: the portal still runs the stored version
    with pytest.raises(HttpError) as err:
        svc.update(claim_from_event(update_form(), path="update"), "2")
    assert err.value.code == "version_unchanged" and store.get("m1") == before
    portal.version = "2"
    svc.update(claim_from_event(update_form(), path="update"), "2")
    assert store.get("m1").application_token == "app-NEW"


def test_self_healing_takes_only_an_administrators_pair():
    keeper, store, auth, _, _ = make_keeper()
    lost = store.save(make_portal(auth).with_token_state(TokenState.REAUTH_REQUIRED))
    access, refresh = auth.issue()
    keeper.admin_check = lambda endpoint, token: Caller(admin=False, app_version="1", installed=True)
    assert keeper.adopt("m1", access, refresh).outcome == Outcome.REJECTED
    assert store.get("m1").refresh_token == lost.refresh_token
    keeper.admin_check = lambda endpoint, token: Caller(admin=True, app_version="1", installed=True)
    assert keeper.adopt("m1", access, refresh).outcome == Outcome.ADOPTED
    assert store.get("m1").user_admin


def test_a_session_is_signed_and_short_lived():
    key = session_key("client-secret-1")
    token, session = issue(
        key,
        member_id="m1",
        domain="p.example.com",
        user_id="7",
        admin=False,
        placement="CRM_DEAL_DETAIL_TAB",
        placement_options='{"ID":"5"}',
        ttl_s=60,
        now=1000,
    )
    assert verify(key, token, now=1059) == session
    with pytest.raises(SessionInvalid):
        verify(key, token, now=1060)  # expired
    with pytest.raises(SessionInvalid):
        verify(session_key("another-secret"), token, now=1000)  # the secret rotated
    body, sig = token.split(".")
    forged = body.replace(body[5], "A" if body[5] != "A" else "B") + "." + sig
    with pytest.raises(SessionInvalid):
        verify(key, forged, now=1000)
