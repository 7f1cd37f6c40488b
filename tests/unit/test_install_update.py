"""ONAPPUPDATE: the new application_token is kept only after the authorization server vouched."""

from __future__ import annotations

import pytest

from b24core.aws.apigw import HttpError
from b24core.bitrix.errors import ExpiredToken
from b24core.bitrix.inbound import claim_from_event
from b24core.portals.states import PortalState
from tests.unit.test_install_service import ScriptedAuthServer, event_form, info, service


def update_form(**auth_over):
    form = event_form(application_token="app-NEW", access_token="at-NEW", refresh_token="rt-NEW", **auth_over)
    form["event"] = "ONAPPUPDATE"
    form["data"] = {"VERSION": "2", "PREVIOUS_VERSION": "1", "LANGUAGE_ID": "en"}
    return form


def installed(auth):
    svc, store = service(auth)
    svc.install(claim_from_event(event_form()))
    return svc, store


def test_a_verified_update_keeps_the_new_application_token_and_version():
    svc, store = installed(ScriptedAuthServer(info()))
    svc.admin_check.version = "2"  # the portal now runs the new version
    svc.update(claim_from_event(update_form(), path="update"), "2")
    portal = store.get("m1")
    assert portal.application_token == "app-NEW" and portal.refresh_token == "rt-NEW"
    assert portal.app_version == "2" and portal.install_path == "event"


def test_an_update_whose_token_the_auth_server_rejects_changes_nothing():
    auth = ScriptedAuthServer(info())
    svc, store = installed(auth)
    auth.error = ExpiredToken("nope")
    with pytest.raises(HttpError) as err:
        svc.update(claim_from_event(update_form(), path="update"), "2")
    assert err.value.status == 401
    assert store.get("m1").application_token == "app-123456"


def test_an_update_with_a_token_of_another_portal_changes_nothing():
    auth = ScriptedAuthServer(info())
    svc, store = installed(auth)
    auth.info = info(member_id="someone-else")
    with pytest.raises(HttpError) as err:
        svc.update(claim_from_event(update_form(), path="update"), "2")
    assert err.value.status == 403 and store.get("m1").application_token == "app-123456"


def test_an_update_for_an_uninstalled_portal_is_refused():
    svc, store = installed(ScriptedAuthServer(info()))
    store.save(store.get("m1").with_state(PortalState.DELETED))
    with pytest.raises(HttpError) as err:
        svc.update(claim_from_event(update_form(), path="update"), "2")
    assert err.value.status == 409 and store.get("m1").application_token == "app-123456"
