"""Install that tells the truth, end to end: the whole stack against simulated cloud and box portals.

What THIS portal has is learned in one `batch` request; features are recorded per portal; events of
available features are bound; the page tells the admin what to do; a box that updates gets its
feature switched on by a re-check, without a reinstall.
"""

from __future__ import annotations

import time

import pytest

from b24core.capabilities.store import DynamoCapabilityStore
from b24core.capabilities.survey import SURVEY
from tests.e2e.conftest import wait_for

SURVEY_METHODS = {method for method, _ in SURVEY.values()}
APP_SCOPES = "crm,im,telephony,user,placement"  # the manifest's scopes, plus the default


@pytest.fixture(scope="module")
def caps(stack) -> DynamoCapabilityStore:
    return DynamoCapabilityStore(stack.resources["AppTable"], stack.region, stack.dynamodb_endpoint)


def probe_calls(sim, domain):
    return [c for c in sim.calls_for(domain) if _is_check(c)]


TRUST_METHODS = {"user.admin", "app.info"}  # the installer's rights, asked with its own token


def _is_check(call) -> bool:
    return bool(SURVEY_METHODS & set(call.sub_methods)) and set(call.sub_methods) != TRUST_METHODS


def features(store, member_id):
    return {n: f["status"] for n, f in store.get(member_id).capabilities["features"].items()}


def recheck_now(stack, caps, member_id):
    """Time passes until the portal's re-check is due, then the schedule fires."""
    caps.schedule_recheck(member_id, int(time.time()) - 1)
    return stack.fire_schedule("CapabilityCheckFunction", "Recheck")


def test_a_cloud_portal_gets_every_feature_and_the_check_costs_one_request(sim, stack, store, install_url):
    portal = sim.add_portal(profile="cloud")
    resp = sim.install(portal.domain, install_url, mode="ui", scope=APP_SCOPES)
    assert resp.status_code == 200 and "BX24.installFinish()" in resp.text
    assert features(store, portal.member_id) == {
        "crm": "available",
        "contacts": "available",
        "deal_tab": "available",
        "telephony": "available",
        "notifications": "available",
    }
    calls = sim.calls_for(portal.domain)
    # The check is exactly one HTTP request: a batch with every probe; binding is one more, of binds only.
    checks = [c for c in calls if _is_check(c)]
    trust = [c for c in calls if set(c.sub_methods) == TRUST_METHODS]
    assert len(trust) == 1 and trust[0].was_batch  # the installer is an administrator: one request
    binds = [c for c in calls if set(c.sub_methods) == {"event.bind", "placement.bind"}]
    assert len(checks) == 1 and checks[0].was_batch and set(checks[0].sub_methods) == SURVEY_METHODS
    assert len(binds) == 1 and binds[0].subcalls == 10  # nine events and the deal tab, in one request
    # (the delivery probe of the events issue sends its own `event.bind ONAPPTEST` + `event.test` batch)
    bound = {b.event for b in portal.bindings if b.handler == f"{stack.gateway_url}/events"}
    assert bound - {"ONAPPTEST"} == {  # ONAPPTEST: the delivery probe's own binding
        "ONCRMDEALADD",
        "ONCRMDEALUPDATE",
        "ONCRMDEALDELETE",
        "ONCRMCONTACTADD",
        "ONCRMCONTACTUPDATE",
        "ONCRMCONTACTDELETE",
        "ONEXTERNALCALLSTART",
        "ONAPPUNINSTALL",
        "ONAPPUPDATE",
    }
    report = store.get(portal.member_id).capabilities
    assert report["kind"]["kind"] == "cloud" and report["kind"]["told_by"]
    assert report["plan"]["license"].endswith("pro100")
    assert report["trigger"] == "install" and report["next_check_at"] is None
    assert portal.notifications == []  # nothing to tell the admin


def test_a_box_without_telephony_gets_crm_and_telephony_turns_on_after_the_box_updates(
    sim, stack, store, caps, install_url
):
    box = sim.add_portal(profile="box", language="en")
    resp = sim.install(box.domain, install_url, mode="ui", scope=APP_SCOPES)
    assert resp.status_code == 200
    assert len(probe_calls(sim, box.domain)) == 1
    report = store.get(box.member_id).capabilities
    telephony = report["features"]["telephony"]
    assert report["features"]["crm"]["status"] == "available"
    assert telephony["status"] == "missing"
    assert telephony["missing_methods"] == ["telephony.externalcall.register"]
    assert telephony["missing_events"] == ["ONEXTERNALCALLSTART"]
    assert telephony["missing_scopes"] == ["telephony"]
    assert report["kind"]["kind"] == "box"
    # the page: CRM works, so the install finishes; it says what telephony lacks and what to do
    page = resp.text
    assert "BX24.installFinish()" in page
    assert "telephony.externalcall.register" in page and "ONEXTERNALCALLSTART" in page
    assert "/bitrix/admin/update_system.php" in page and "“voximplant”" in page
    assert "oauth.bitrix.info" in page and "app-world.json" in page
    assert not any(b.event == "ONEXTERNALCALLSTART" for b in box.bindings)
    assert caps.recheck_due_at(box.member_id) > time.time() + 6 * 86400  # a week, not sooner

    # the box admin installs the telephony module; the scheduled re-check finds it
    box.enable_module("telephony")
    before = len(sim.calls_for(box.domain))
    recheck_now(stack, caps, box.member_id)
    assert features(store, box.member_id)["telephony"] == "available"
    assert any(b.event == "ONEXTERNALCALLSTART" for b in box.bindings)
    new = sim.calls_for(box.domain)[before:]
    assert len([c for c in new if _is_check(c)]) == 1  # the re-check: one request
    assert [c.sub_methods for c in new if set(c.sub_methods) == {"event.bind"}] == [("event.bind",)]
    [entry, *_] = caps.history(box.member_id)  # newest first
    assert entry["trigger"] == "schedule"
    assert [(c["feature"], c["from"], c["to"]) for c in entry["changes"]] == [
        ("telephony", "missing", "available")
    ]

    # and it works without a reinstall: a click-to-call reaches the example app's handler
    box.ui_click_to_call("+15550100")
    wait_for(
        lambda: any(c["PHONE_NUMBER"] == "+15550100" for c in box.external_calls.values()),
        what="the call registered by the telephony handler",
    )


def test_a_box_missing_a_required_method_gets_no_install_finish_until_it_is_updated(
    sim, stack, store, install_url
):
    box = sim.add_portal(profile="box", language="ru")
    box.remove_method("crm.deal.list")  # an older CRM module
    resp = sim.install(box.domain, install_url, mode="ui", scope=APP_SCOPES, finish=False)
    assert resp.status_code == 200
    page = resp.text
    assert "installFinish" not in page and "data-install-finish='no'" in page
    assert "crm.deal.list" in page and "Установите обновления Битрикс24" in page
    assert f"{box.base_url}/bitrix/admin/update_system.php" in page
    crm = store.get(box.member_id).capabilities["features"]["crm"]
    assert crm["status"] == "missing" and crm["missing_methods"] == ["crm.deal.list"]
    assert box.app is not None and box.app.installed is False
    assert not any(b.event.startswith("ONCRMDEAL") for b in box.bindings)  # nothing bound for it

    # the admin updates the box and opens the app again: now the page finishes the install
    box.restore_method("crm.deal.list")
    again = sim.open_app(box.domain, install_url)
    assert again.status_code == 200 and "BX24.installFinish()" in again.text
    assert features(store, box.member_id)["crm"] == "available"
    assert any(b.event == "ONCRMDEALADD" for b in box.bindings)


def test_a_partial_batch_failure_is_recorded_unknown_the_install_finishes_and_a_recheck_comes_soon(
    sim, stack, store, caps, install_url
):
    box = sim.add_portal(profile="box")
    box.failing_methods = {"events": "INTERNAL_SERVER_ERROR"}
    resp = sim.install(box.domain, install_url, mode="ui", scope=APP_SCOPES)
    assert resp.status_code == 200 and "BX24.installFinish()" in resp.text
    report = store.get(box.member_id).capabilities
    crm = report["features"]["crm"]
    assert crm["status"] == "unknown" and crm["missing_events"] == []  # never "missing"
    assert report["features"]["telephony"]["status"] == "missing"  # the method list still told us that
    assert report["errors"] == {"events": "INTERNAL_SERVER_ERROR"}
    assert caps.recheck_due_at(box.member_id) <= time.time() + 3600
    # the portal recovers; the re-check learns the rest
    box.failing_methods = {}
    recheck_now(stack, caps, box.member_id)
    assert features(store, box.member_id)["crm"] == "available"


def test_a_portal_that_times_out_is_recorded_unknown_never_missing(sim, stack, store, caps, install_url):
    portal = sim.add_portal(profile="cloud")
    assert sim.install(portal.domain, install_url, mode="ui", scope=APP_SCOPES).status_code == 200
    portal.rest_latency_s = 2.5
    try:
        result = stack.invoke(
            "CapabilityCheckFunction", {"action": "check", "member_id": portal.member_id, "budget_s": 1}
        )
    finally:
        portal.rest_latency_s = 0
    assert {f["status"] for f in result["features"].values()} == {"unknown"}
    assert "TransportError" in result["errors"]["batch"]
    stored = store.get(portal.member_id).capabilities
    assert {f["last_known"] for f in stored["features"].values()} == {"available"}
    assert caps.recheck_due_at(portal.member_id) <= time.time() + 3600
    assert caps.history(portal.member_id)[0]["trigger"] == "install"  # the timeout is no change


def test_without_the_method_list_method_get_is_asked_for_each_needed_method(sim, stack, store, install_url):
    box = sim.add_portal(profile="box")
    box.remove_method("methods")  # deprecated; a portal may not have it
    assert sim.install(box.domain, install_url, mode="event", scope=APP_SCOPES).status_code == 200
    report = store.get(box.member_id).capabilities
    assert report["sources"]["methods"] == "method.get"
    assert report["features"]["crm"]["status"] == "available"
    assert report["features"]["telephony"]["missing_methods"] == ["telephony.externalcall.register"]
    probe, fallback = [c for c in sim.calls_for(box.domain) if set(c.sub_methods) != TRUST_METHODS][:2]
    assert set(probe.sub_methods) == SURVEY_METHODS
    assert set(fallback.sub_methods) == {"method.get"} and fallback.subcalls == 7  # the manifest's methods


def test_the_admin_is_told_once_when_a_feature_is_missing_and_once_when_it_comes(
    sim, stack, store, caps, install_url
):
    portal = sim.add_portal(profile="cloud")
    portal.disable_module("telephony")
    assert sim.install(portal.domain, install_url, mode="event", scope=APP_SCOPES).status_code == 200
    [missing] = portal.notifications
    assert missing["to"] == "1" and missing["kind"] == "system"
    assert "telephony" in missing["message"] and "telephony.externalcall.register" in missing["message"]
    recheck_now(stack, caps, portal.member_id)
    assert len(portal.notifications) == 1  # the same state: no second message
    portal.enable_module("telephony")
    recheck_now(stack, caps, portal.member_id)
    assert len(portal.notifications) == 2 and "telephony" in portal.notifications[1]["message"]
    stack.invoke("CapabilityCheckFunction", {"action": "check", "member_id": portal.member_id})
    assert len(portal.notifications) == 2
