"""The capability runner with in-memory stores: what it records, when it re-checks, whom it tells."""

from __future__ import annotations

import pytest

from b24core.capabilities.notices import plan_notices
from b24core.capabilities.runner import CapabilityRunner
from b24core.capabilities.store import InMemoryCapabilityStore
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.store import InMemoryPortalStore
from tests.unit._manifests import MANIFEST
from tests.unit.test_capabilities import HANDLER, ScriptedPortal

WEEK, HOUR = 7 * 86400, 3600


class Clock:
    def __init__(self) -> None:
        self.now = 1_767_225_600.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env():
    portals = InMemoryPortalStore()
    portals.save(
        Portal(
            member_id="m1",
            domain="crm.acme.local",
            client_endpoint="https://crm.acme.local/rest/",
            state=PortalState.ACTIVE,
            language="ru",
            user_id="7",
        )
    )
    caps = InMemoryCapabilityStore()
    portal = ScriptedPortal("crm.acme.local", app_info={"LICENSE_FAMILY": "selfhosted"})
    clock = Clock()
    runner = CapabilityRunner(
        portals=portals,
        caps=caps,
        manifest=MANIFEST,
        make_client=lambda p, timeout: portal,  # type: ignore[arg-type,return-value]
        recheck_interval_s=WEEK,
        recheck_soon_s=HOUR,
        clock=clock,
    )
    return runner, portals, caps, portal, clock


def notices(portal: ScriptedPortal) -> list[str]:
    return [p["MESSAGE"] for r in portal.requests for m, p in r.values() if m == "im.notify.system.add"]


def test_a_box_lacking_telephony_is_recorded_scheduled_weekly_and_told_once(env):
    runner, portals, caps, portal, clock = env
    portal.methods -= {"telephony.externalcall.register"}
    portal.events -= {"ONEXTERNALCALLSTART"}
    report = runner.check("m1", HANDLER, trigger="install")
    stored = portals.get("m1").capabilities
    assert stored["features"]["telephony"]["status"] == "missing"
    assert stored["trigger"] == "install" and stored == report
    assert caps.recheck_due_at("m1") == int(clock.now) + WEEK
    [entry] = caps.history("m1")
    assert {c["feature"]: c["to"] for c in entry["changes"] if "feature" in c} == {
        "crm": "available",
        "telephony": "missing",
        "notifications": "available",
    }
    assert {"kind": {"from": "not checked", "to": "box"}} in entry["changes"]
    [message] = notices(portal)
    assert "telephony" in message and "telephony.externalcall.register" in message
    assert "Битрикс24" in message  # in the portal's language
    # the same portal checked again: no new history entry, no second message
    clock.now += WEEK
    runner.check("m1", HANDLER, trigger="schedule")
    assert len(caps.history("m1")) == 1 and len(notices(portal)) == 1


def test_telephony_turning_on_is_bound_recorded_told_once_and_leaves_the_schedule(env):
    runner, portals, caps, portal, clock = env
    portal.methods -= {"telephony.externalcall.register"}
    portal.events -= {"ONEXTERNALCALLSTART"}
    runner.check("m1", HANDLER, trigger="install")
    portal.methods |= {"telephony.externalcall.register"}  # the box admin installed the module
    portal.events |= {"ONEXTERNALCALLSTART"}
    clock.now += WEEK
    assert caps.due_rechecks(int(clock.now)) == ["m1"]
    assert runner.recheck_due(HANDLER).items() >= {"rechecked": 1, "skipped": 0, "failed": 0}.items()
    stored = portals.get("m1").capabilities
    assert stored["features"]["telephony"]["status"] == "available"
    assert "ONEXTERNALCALLSTART" in stored["bound"]
    assert caps.recheck_due_at("m1") is None  # nothing lacking: off the schedule
    assert [c["to"] for c in caps.history("m1")[0]["changes"]] == ["available"]
    assert len(notices(portal)) == 2 and "telephony" in notices(portal)[1]
    runner.check("m1", HANDLER)
    assert len(notices(portal)) == 2


def test_a_portal_that_does_not_answer_is_recorded_unknown_and_asked_again_soon(env):
    runner, portals, caps, portal, clock = env
    portal.down = True
    report = runner.check("m1", HANDLER, trigger="install")
    assert {f["status"] for f in report["features"].values()} == {"unknown"}
    assert report["required_ok"] is True
    assert "TransportError" in report["errors"]["batch"]
    assert caps.recheck_due_at("m1") == int(clock.now) + HOUR
    assert caps.history("m1") == [] and notices(portal) == []


def test_an_uninstalled_portal_is_not_checked_and_leaves_the_schedule(env):
    runner, portals, caps, portal, clock = env
    current = portals.get("m1")
    portals.save(current.with_state(PortalState.DELETED))
    caps.schedule_recheck("m1", int(clock.now) - 1)
    assert runner.check("m1", HANDLER) == {"error": "portal_not_active", "member_id": "m1"}
    assert runner.recheck_due(HANDLER).items() >= {"rechecked": 0, "skipped": 1, "failed": 0}.items()
    assert caps.recheck_due_at("m1") is None and portal.requests == []


def test_no_notice_where_the_notification_feature_is_missing_or_nobody_to_tell():
    features = {
        "telephony": {"status": "missing", "missing_methods": ["telephony.externalcall.register"]},
        "notifications": {"status": "missing", "missing_methods": ["im.notify.system.add"]},
    }
    assert plan_notices({}, features, "1", "box", manifest=MANIFEST, language="en") == []
    features["notifications"] = {"status": "available"}
    assert plan_notices({}, features, "", "box", manifest=MANIFEST, language="en") == []
    [notice] = plan_notices({}, features, "1", "box", manifest=MANIFEST, language="en")
    assert notice.user_id == "1" and notice.marks == {"telephony": "missing"}
    assert "Platform update" in notice.message
    assert (
        plan_notices(
            {"notified": {"telephony": "missing"}}, features, "1", "box", manifest=MANIFEST, language="en"
        )
        == []
    )


def test_purge_deletes_everything_of_the_portal_but_its_record():
    caps = InMemoryCapabilityStore()
    caps.add_history("m1", 1, {"x": 1})
    caps.schedule_recheck("m1", 5)
    caps.items[("PORTAL#m1", "DEAL#1")] = {}
    caps.items[("PORTAL#m1", "PORTAL")] = {}
    caps.add_history("m2", 1, {"x": 2})
    assert caps.purge("m1") == 3
    assert set(caps.items) == {("PORTAL#m1", "PORTAL"), *[k for k in caps.items if k[0] == "PORTAL#m2"]}
