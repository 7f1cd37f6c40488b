"""Lossless delivery end to end: whenever and however events stopped, every change reaches the mirror.

* a box whose firewall starts blocking the event queue a week after a good install and probe: the
  changes made right after the block — before anything could know — are found by the change audit and
  sent, the route switches to the offline queue, and later changes come from there;
* a cloud portal whose queue dropped a few minutes of deliveries (Bitrix24 never retries): the audit
  finds and sends each of them, counts them (``EventsMissed``) and the route stays online.

The e2e stack fires schedules by hand and awaits a change's event 30 s of the portal's clock (the
simulator's clock is moved instead of waiting). test_lossless_defaults.py runs the same box story with
the shipped defaults and the schedules firing by themselves.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from b24core.delivery.modes import DeliveryMode, ProbeOutcome
from b24core.delivery.store import DynamoDeliveryStore
from tests.e2e.conftest import wait_for

FN = "OfflinePullFunction"


@pytest.fixture(scope="module")
def delivery(stack: Any) -> DynamoDeliveryStore:
    return DynamoDeliveryStore(stack.resources["AppTable"], stack.region, stack.dynamodb_endpoint)


def _cli(stack: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    from b24cli.main import main

    monkeypatch.setenv("B24_LOCAL_STATE_DIR", str(stack.state_dir))
    monkeypatch.delenv("B24_STACK_NAME", raising=False)
    monkeypatch.delenv("B24_TABLE_NAME", raising=False)
    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def _title(mirror: Any, portal: Any, deal_id: int) -> str | None:
    return (mirror.get(portal.member_id, str(deal_id)) or {}).get("TITLE")


def _missed_metrics(stack: Any, reason: str) -> float:
    """EventsMissed as the functions emitted it (EMF lines in their logs), for this reason."""
    total = 0.0
    for path in stack.logs_dir.rglob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if '"EventsMissed"' not in line or not line.startswith("{"):
                continue
            try:
                m = json.loads(line)
            except ValueError:  # a line still being written
                continue
            if m.get("reason") == reason and m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "B24App":
                total += sum(m["EventsMissed"]) if isinstance(m["EventsMissed"], list) else m["EventsMissed"]
    return total


def test_a_box_blocked_after_a_good_install_loses_no_change_made_before_anything_knew(
    sim, stack, mirror, delivery, install_url, monkeypatch, capsys
):
    box = sim.add_portal(profile="box")  # the network is open at install
    box.restore_method("im.notify.system.add")  # an updated im module: the app can notify its admin
    assert sim.install(box.domain, install_url, mode="ui").status_code == 200
    stack.fire_schedule(FN, "Probe")  # the first probe once BX24.installFinish() was called
    wait_for(
        lambda: delivery.get(box.member_id).probe_outcome == ProbeOutcome.ARRIVED, what="the probe arriving"
    )
    before = box.ui_deal_add({"TITLE": "Before the block"})
    wait_for(lambda: _title(mirror, box, before) == "Before the block", what="an online event handled")
    missed_before = _missed_metrics(stack, "no_event")

    # A week later the firewall starts blocking the event queue. Nothing knows yet.
    box.queue_blocked = True
    right_after = box.ui_deal_add({"TITLE": "Right after the block"})
    box.ui_deal_update(before, {"TITLE": "Changed right after the block"})
    assert sim.wait_idle()
    assert {d.outcome for d in sim.deliveries_for(box.domain) if d.event.startswith("ONCRMDEAL")} >= {
        "blocked"
    }
    assert delivery.get(box.member_id).mode == DeliveryMode.ONLINE  # no probe has said anything

    # The audit's next run, once the changes are older than the grace period: both sent, counted, and
    # a probe sent at once to confirm.
    sim.clock.advance(31)
    audited = stack.fire_schedule("ChangePollFunction", "Poll")
    assert audited["missed"] == 2 and audited["switched"] == []
    wait_for(lambda: _title(mirror, box, right_after) == "Right after the block", what="the missed add")
    wait_for(lambda: _title(mirror, box, before) == "Changed right after the block", what="the missed update")
    assert wait_for(lambda: _missed_metrics(stack, "no_event") >= missed_before + 2, what="EventsMissed")
    assert delivery.get(box.member_id).probe_outcome == ProbeOutcome.PENDING

    # The probe's verdict: the route goes to the offline queue; the admin is told once.
    judged = stack.fire_schedule(FN, "Probe")
    assert judged["judged_missed"] >= 1
    state = delivery.get(box.member_id)
    assert state.mode == DeliveryMode.PULL and state.offline_bound
    later = box.ui_deal_add({"TITLE": "After the verdict"})
    box.ui_deal_update(right_after, {"TITLE": "Updated after the verdict"})
    assert stack.fire_schedule(FN, "Pull")["enqueued"] >= 2
    wait_for(lambda: _title(mirror, box, later) == "After the verdict", what="a pulled add")
    wait_for(lambda: _title(mirror, box, right_after) == "Updated after the verdict", what="a pulled update")
    # The audit keeps watching the pulled route: what the offline queue brought is not sent again.
    sim.clock.advance(31)
    again = stack.fire_schedule("ChangePollFunction", "Poll")
    assert again["missed"] == 0
    told = [n for n in box.notifications if "event queue" in n["message"]]
    assert len(told) == 1

    # What an operator sees: the route, why, and each switch with its evidence.
    out = _cli(stack, monkeypatch, capsys, "portals", "show", box.member_id)
    assert "pull" in out and "change audit" in out and "requests/h" in out and "missed so far" in out
    out = _cli(stack, monkeypatch, capsys, "portals", "route", box.member_id, "--json")
    history = json.loads(out)["history"]
    assert (history[-1]["from"], history[-1]["to"], history[-1]["trigger"]) == (
        "online",
        "pull",
        "probe_missed",
    )
    assert history[-1]["evidence"]["detector"] == "delivery probe"
    out = _cli(stack, monkeypatch, capsys, "portals", "show", box.member_id, "--json")
    assert json.loads(out)["delivery"]["mode"] == "pull"


def test_a_cloud_portal_whose_queue_dropped_deliveries_gets_every_change_and_counts_them(
    sim, stack, mirror, delivery, install_url
):
    portal = sim.add_portal(profile="cloud")
    assert sim.install(portal.domain, install_url, mode="event").status_code == 200
    wait_for(
        lambda: (s := delivery.get(portal.member_id)) is not None and s.probe_outcome == ProbeOutcome.ARRIVED,
        what="the install's probe arriving",
    )
    kept = portal.ui_deal_add({"TITLE": "Delivered"})
    wait_for(lambda: _title(mirror, portal, kept) == "Delivered", what="an online event handled")
    missed_before = _missed_metrics(stack, "no_event")

    # For a few minutes the cloud queue drops this portal's deliveries (and never retries them).
    portal.queue_blocked = True
    dropped = [portal.ui_deal_add({"TITLE": f"Dropped {i}"}) for i in range(3)]
    portal.ui_deal_update(kept, {"TITLE": "Dropped update"})
    contact = portal.ui_add("crm.contact", {"NAME": "Dropped contact"})  # a second kind of object
    sim.clock.advance(180)
    assert sim.wait_idle()
    portal.queue_blocked = False
    after = portal.ui_deal_add({"TITLE": "Delivered again"})
    wait_for(lambda: _title(mirror, portal, after) == "Delivered again", what="events flowing again")
    assert all(mirror.get(portal.member_id, str(d)) is None for d in dropped)  # lost, so far

    sim.clock.advance(31)
    audited = stack.fire_schedule("ChangePollFunction", "Poll")
    assert audited["missed"] == 5 and audited["switched"] == []  # one strike: the route stays online
    for i, deal in enumerate(dropped):
        wait_for(lambda d=deal, i=i: _title(mirror, portal, d) == f"Dropped {i}", what="a dropped add")
    wait_for(lambda: _title(mirror, portal, kept) == "Dropped update", what="the dropped update")
    wait_for(
        lambda: (
            (mirror.get(portal.member_id, str(contact), kind="contact") or {}).get("NAME")
            == "Dropped contact"
        ),
        what="the dropped contact",
    )
    assert wait_for(lambda: _missed_metrics(stack, "no_event") >= missed_before + 5, what="EventsMissed")

    # Delivery works: the next audit finds its changes delivered and forgets the strike.
    portal.ui_deal_update(after, {"TITLE": "Fine"})
    wait_for(lambda: _title(mirror, portal, after) == "Fine", what="an online update")
    sim.clock.advance(31)
    clean = stack.fire_schedule("ChangePollFunction", "Poll")
    assert clean["missed"] == 0
    state = delivery.get(portal.member_id)
    assert state.mode == DeliveryMode.ONLINE and state.last_confirmed_at > 0
