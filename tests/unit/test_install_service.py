"""Install verification logic with an in-memory store and a scripted authorization server."""

import pytest

from b24core.aws.apigw import HttpError
from b24core.bitrix.errors import ExpiredToken, TransportError
from b24core.bitrix.inbound import claim_from_request
from b24core.bitrix.oauth import AppInfo, InstallInfo
from b24core.portals.states import PortalState
from b24core.portals.store import InMemoryPortalStore
from b24core.trust.admin import Caller
from b24core.trust.install import InstallService


class ScriptedAuthServer:
    def __init__(self, info=None, error=None):
        self.info, self.error, self.calls = info, error, 0

    def app_info(self, token):
        self.calls += 1
        if self.error:
            raise self.error
        return self.info


def info(client_id="app.1", member_id="m1", domain="p.example.com", endpoint="https://p.example.com/rest/"):
    return AppInfo(
        client_id,
        "crm",
        None,
        "1",
        InstallInfo(True, member_id, domain, endpoint, "F", "crm", "1", "B", f"https://{domain}"),
    )


def frame(**over):
    query = {"DOMAIN": "p.example.com", "PROTOCOL": "1", "LANG": "en", "APP_SID": "x"}
    form = {
        "AUTH_ID": "at-123456",
        "AUTH_EXPIRES": "3600",
        "REFRESH_ID": "rt-123456",
        "APPLICATION_TOKEN": "app-123456",
        "member_id": "m1",
        "status": "F",
        "PLACEMENT": "DEFAULT",
    }
    form.update(over)
    return query, form


def event_form(**auth_over):
    auth = {
        "access_token": "at-123456",
        "refresh_token": "rt-123456",
        "application_token": "app-123456",
        "member_id": "m1",
        "domain": "p.example.com",
        "client_endpoint": "https://p.example.com/rest/",
        "server_endpoint": "https://oauth.bitrix.info/rest/",
        "expires_in": "3600",
    }
    auth.update(auth_over)
    return {"event": "ONAPPINSTALL", "data": {"LANGUAGE": "ru"}, "auth": auth}


class ScriptedPortal:
    """What the portal answers to ``batch`` of user.admin + app.info (b24core.trust.admin)."""

    def __init__(self, admin=True, version="1"):
        self.admin, self.version, self.calls = admin, version, 0

    def __call__(self, endpoint, token):
        self.calls += 1
        return Caller(admin=self.admin, app_version=self.version, installed=True)


def service(auth, portal=None):
    store = InMemoryPortalStore()
    svc = InstallService(
        store, auth, "app.1", allow_insecure_endpoints=False, admin_check=portal or ScriptedPortal()
    )
    return svc, store


def test_frame_install_is_verified_then_stored():
    svc, store = service(ScriptedAuthServer(info()))
    portal = svc.install(claim_from_request(*frame()))
    assert portal.state == PortalState.ACTIVE
    assert store.get("m1").refresh_token == "rt-123456"
    assert store.get("m1").install_path == "ui"


def test_event_install_stores_application_token_and_language():
    svc, store = service(ScriptedAuthServer(info()))
    svc.install(claim_from_request({}, event_form()))
    assert store.get("m1").application_token == "app-123456"
    assert store.get("m1").language == "ru"


@pytest.mark.parametrize(
    ("auth_info", "code"),
    [
        (info(client_id="someone.else"), "claim_mismatch"),
        (info(member_id="other"), "claim_mismatch"),
        (info(domain="evil.example.com"), "claim_mismatch"),
        (info(endpoint="https://evil.example.com/rest/"), "claim_mismatch"),
    ],
)
def test_mismatching_claims_are_refused_and_nothing_stored(auth_info, code):
    svc, store = service(ScriptedAuthServer(auth_info))
    with pytest.raises(HttpError) as err:
        svc.install(claim_from_request({}, event_form()))
    assert err.value.status == 403 and err.value.code == code
    assert store.get("m1") is None


def test_rejected_token_is_401_and_unreachable_auth_server_is_503():
    svc, store = service(ScriptedAuthServer(error=ExpiredToken("x")))
    with pytest.raises(HttpError) as err:
        svc.install(claim_from_request({}, event_form()))
    assert err.value.status == 401
    svc, store = service(ScriptedAuthServer(error=TransportError("down")))
    with pytest.raises(HttpError) as err:
        svc.install(claim_from_request({}, event_form()))
    assert err.value.status == 503
    assert store.get("m1") is None


def test_private_endpoint_is_refused_before_the_auth_server_is_asked():
    auth = ScriptedAuthServer(info(endpoint="https://10.0.0.1/rest/"))
    svc, store = service(auth)
    with pytest.raises(HttpError) as err:
        svc.install(claim_from_request({}, event_form(client_endpoint="https://10.0.0.1/rest/")))
    assert err.value.status == 400 and auth.calls == 0


@pytest.mark.parametrize("missing", ["AUTH_ID", "REFRESH_ID", "member_id", "APPLICATION_TOKEN"])
def test_missing_frame_fields_are_named(missing):
    query, form = frame()
    del form[missing]
    with pytest.raises(HttpError) as err:
        claim_from_request(query, form)
    assert err.value.status == 400 and missing in err.value.message


def test_reinstall_after_uninstall_reactivates():
    svc, store = service(ScriptedAuthServer(info()))
    portal = svc.install(claim_from_request({}, event_form()))
    store.save(portal.with_state(PortalState.DELETED))
    again = svc.install(claim_from_request({}, event_form()))
    assert again.state == PortalState.ACTIVE
