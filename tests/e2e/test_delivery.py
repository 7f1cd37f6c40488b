"""Delivery probe and pull mode, end to end: a box whose network blocks Bitrix24's event queue.

The probe schedule is fired by hand (the stack runs with schedules off) and the e2e stack judges a
probe at the first check after it was sent (B24_PROBE_TIMEOUT_S=0), so nothing here waits for time
to pass: it waits only for work to be done.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from b24core.delivery.modes import DeliveryMode, ProbeOutcome
from b24core.delivery.store import DynamoDeliveryStore
from tests.e2e.conftest import wait_for

FN = "OfflinePullFunction"
FEATURE_EVENTS = {"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE"}


@pytest.fixture(scope="module")
def delivery(stack: Any) -> DynamoDeliveryStore:
    return DynamoDeliveryStore(stack.resources["AppTable"], stack.region, stack.dynamodb_endpoint)


def _mirror_matches(mirror: Any, portal: Any, deal_ids: list[int], gone: list[int]) -> bool:
    for deal_id in deal_ids:
        stored = mirror.get(portal.member_id, str(deal_id))
        if stored is None or stored.get("TITLE") != portal.deals.get(deal_id)["TITLE"]:
            return False
    return all(mirror.get(portal.member_id, str(d)) is None for d in gone)


def _cli(stack: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    from b24cli.main import main

    monkeypatch.setenv("B24_LOCAL_STATE_DIR", str(stack.state_dir))
    monkeypatch.delenv("B24_STACK_NAME", raising=False)
    monkeypatch.delenv("B24_TABLE_NAME", raising=False)
    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_blocked_box_is_detected_switched_to_pull_and_every_later_change_reaches_the_mirror(
    sim, stack, mirror, delivery, install_url, monkeypatch, capsys
):
    box = sim.add_portal(profile="box", queue_blocked=True)
    box.restore_method("im.notify.system.add")  # an updated im module: the app can notify its admin
    assert sim.install(box.domain, install_url, mode="ui").status_code == 200
    # The install frame probed before BX24.installFinish(), when Bitrix24 sends no events yet: that
    # probe proves nothing and is sent again by the next probe run.
    assert delivery.get(box.member_id).probe_outcome == ProbeOutcome.DEFERRED
    assert stack.fire_schedule(FN, "Probe")["sent"] >= 1
    assert delivery.get(box.member_id).probe_outcome == ProbeOutcome.PENDING
    assert sim.wait_idle()
    probes = [d for d in sim.deliveries_for(box.domain, "ONAPPTEST") if d.outcome != "suppressed"]
    assert probes and all(d.outcome == "blocked" for d in probes)  # the queue could not deliver

    judged = stack.fire_schedule(FN, "Probe")
    assert judged["judged_missed"] >= 1
    state = delivery.get(box.member_id)
    assert state.mode == DeliveryMode.PULL and state.blocked_since > 0
    assert state.offline_bound and set(state.offline_events) >= FEATURE_EVENTS
    offline = [b for b in box.bindings if b.offline]
    assert {b.event for b in offline} >= FEATURE_EVENTS
    assert all(b.auth_connector == "b24app" for b in offline)  # the app's own writes stay out
    # Its admin was told, once, what the network must let through: the published queue servers.
    told = [n for n in box.notifications if "event queue" in n["message"]]
    assert len(told) == 1
    assert all(node in told[0]["message"] for node in sim.app_world_nodes)
    assert sim.app_world_url in told[0]["message"]

    # Changes made in the portal from now on: adds, repeated updates, a delete.
    ids = [box.ui_deal_add({"TITLE": f"Blocked {i}"}) for i in range(5)]
    for round_ in range(3):
        box.ui_deal_update(ids[0], {"TITLE": f"Blocked 0 v{round_}"})
    box.ui_deal_update(ids[1], {"TITLE": "Blocked 1 renamed"})
    box.ui_deal_delete(ids[4])
    assert sim.wait_idle()
    assert not [d for d in sim.deliveries_for(box.domain) if d.outcome == "delivered"]  # none came online

    pulled = stack.fire_schedule(FN, "Pull")
    assert pulled["enqueued"] >= 6  # one record per changed object and event
    wait_for(
        lambda: _mirror_matches(mirror, box, ids[:4], [ids[4]]),
        what="every change of the blocked box in the mirror",
    )
    assert box.offline == []  # cleared on the portal only after SQS had every record
    state = delivery.get(box.member_id)
    assert state.pending == () and not state.run_open and state.pulled_total >= 6

    out = _cli(stack, monkeypatch, capsys, "portals", "show", box.member_id)
    assert "pull" in out and "blocked since" in out and "app-world.json" in out

    # The network is fixed: a probe now arrives and the portal goes back online; its offline bindings
    # are removed and the queue drained.
    box.queue_blocked = False
    out = _cli(stack, monkeypatch, capsys, "portals", "probe", box.member_id, "--wait", "20")
    assert "arrived" in out
    wait_for(
        lambda: (s := delivery.get(box.member_id)).mode == DeliveryMode.ONLINE and not s.has_offline_work,
        what="the box back online with nothing left to pull",
    )
    assert not [b for b in box.bindings if b.offline]
    deal_id = box.ui_deal_add({"TITLE": "Online again"})
    wait_for(lambda: mirror.get(box.member_id, str(deal_id)) is not None, what="an online event handled")


def test_a_cloud_portal_whose_probe_arrives_stays_online(sim, stack, delivery, install_url):
    portal = sim.add_portal(profile="cloud")
    # Without a UI the install is finished at once, so the install's own probe counts.
    assert sim.install(portal.domain, install_url, mode="event").status_code == 200
    wait_for(
        lambda: (s := delivery.get(portal.member_id)) is not None and s.probe_outcome == ProbeOutcome.ARRIVED,
        what="the install's probe arriving",
    )
    stack.fire_schedule(FN, "Probe")
    state = delivery.get(portal.member_id)
    assert state.mode == DeliveryMode.ONLINE and not state.blocked and not state.offline_bound
    assert state.next_probe_at - state.last_arrived_at == 24 * 3600  # cloud portals: daily
    assert not [b for b in portal.bindings if b.offline]


def test_lossless_mode_pulls_on_onofflineevent_and_ignores_the_apps_own_writes(
    sim, stack, mirror, delivery, install_url, monkeypatch, capsys
):
    portal = sim.add_portal(profile="cloud")
    assert sim.install(portal.domain, install_url, mode="ui").status_code == 200
    out = _cli(stack, monkeypatch, capsys, "portals", "set-mode", portal.member_id, "lossless")
    assert "lossless" in out
    assert {b.event for b in portal.bindings if b.offline} >= FEATURE_EVENTS
    assert any(b.event == "ONOFFLINEEVENT" and not b.offline for b in portal.bindings)

    deal_id = portal.ui_deal_add({"TITLE": "Twice delivered"})
    # Online event and offline record both arrive; ONOFFLINEEVENT makes the bundle pull at once.
    wait_for(lambda: mirror.get(portal.member_id, str(deal_id)) is not None, what="the deal mirrored")
    wait_for(
        lambda: portal.offline == [] and delivery.get(portal.member_id).pulled_total >= 1,
        what="the offline record pulled on ONOFFLINEEVENT",
    )
    assert sim.deliveries_for(portal.domain, "ONOFFLINEEVENT")

    # A write made with the app's auth_connector does not come back through the offline queue.
    token = sim.issue_tokens(portal.domain)["access_token"]
    resp = httpx.post(
        f"{portal.client_endpoint}crm.deal.update",
        json={"id": deal_id, "fields": {"TITLE": "Own write"}, "auth": token, "auth_connector": "b24app"},
    )
    assert resp.status_code == 200
    assert portal.offline == []

    out = _cli(stack, monkeypatch, capsys, "portals", "set-mode", portal.member_id, "online")
    assert "online" in out
    assert not [b for b in portal.bindings if b.offline]
