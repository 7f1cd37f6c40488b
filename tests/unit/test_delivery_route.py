"""The delivery route: its transitions with their evidence, the one notifier, and what the change
audit's findings do to it (the audit itself runs against the simulator: tests/integration/test_audit.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from b24core.aws import metrics
from b24core.aws.settings import AuditPolicy
from b24core.capabilities.manifest import load_manifest
from b24core.delivery.audit_cursor import AuditResult, KindResult
from b24core.delivery.audit_round import AuditRound, wanted_objects
from b24core.delivery.audit_store import InMemoryAuditStore, schedule_audit
from b24core.delivery.modes import DeliveryMode, Trigger
from b24core.delivery.probe import AppWorld
from b24core.delivery.route import RouteKeeper
from b24core.delivery.store import (
    HISTORY_MAX,
    DeliveryState,
    InMemoryDeliveryStore,
    webhook_connected,
    webhook_disconnected,
)
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.store import InMemoryPortalStore

M = DeliveryMode


def test_transitions_keep_the_evidence_and_a_bounded_history():
    s = DeliveryState("m")
    after = s.on(Trigger.AUDIT_MISSED, 100, "no event", {"missed": 3})
    assert after.mode == M.PULL and after.degraded
    assert after.history[-1] == {
        "at": 100,
        "from": "online",
        "to": "pull",
        "trigger": "audit_missed",
        "reason": "no event",
        "evidence": {"missed": 3},
    }
    assert after.on(Trigger.BIND_REFUSED, 101).mode == M.POLLING
    assert after.on(Trigger.BIND_REFUSED, 101).on(Trigger.BIND_MADE, 102).mode == M.PULL
    assert after.on(Trigger.PROBE_ARRIVED, 103).mode == M.ONLINE
    hook = replace(s, auth="webhook", outgoing=True).on(Trigger.OUTGOING_ON, 1)
    assert hook.mode == M.WEBHOOK and not hook.degraded
    blocked = hook.on(Trigger.AUDIT_MISSED, 2)
    assert blocked.mode == M.POLLING and blocked.degraded and blocked.polled
    assert blocked.on(Trigger.EVENTS_SEEN, 3).mode == M.WEBHOOK
    assert not replace(blocked, outgoing=False).degraded  # polled by choice: nothing to tell
    assert blocked.index_keys() == (None, None)  # no probe, no offline queue for a webhook portal
    flip = s
    for i in range(HISTORY_MAX + 5):
        flip = flip.on(Trigger.AUDIT_MISSED if i % 2 == 0 else Trigger.PROBE_ARRIVED, i)
    assert len(flip.history) == HISTORY_MAX and flip.history[-1]["at"] == HISTORY_MAX + 4


def test_connecting_and_disconnecting_a_webhook_moves_the_route():
    store = InMemoryDeliveryStore()
    assert webhook_connected(store, "m", outgoing=True, now=1).mode == M.WEBHOOK
    assert webhook_connected(store, "m", outgoing=False, now=2).mode == M.POLLING
    back = webhook_disconnected(store, "m", now=3)
    assert (back.mode, back.auth) == (M.ONLINE, "oauth")
    assert [h["trigger"] for h in back.history] == ["outgoing_on", "outgoing_off", "webhook_gone"]


# ---------------------------------------------------------------- the audit round's decisions
PORTAL = Portal(
    member_id="m",
    domain="box.example",
    client_endpoint="https://box.example/rest/",
    state=PortalState.ACTIVE,
    user_id="1",
    installed_at=10,
    capabilities={"features": {"notifications": {"status": "available"}}, "admin_user_id": "1"},
)


@dataclass
class FakeAudit:
    """Stands for ChangeAudit: answers what the test says it found."""

    results: list[AuditResult]
    calls: list[dict[str, Any]] = field(default_factory=list)

    def run(self, client, member_id, domain, feeds, specs, wanted, **kw):
        self.calls.append(kw)
        return feeds, self.results.pop(0)


@dataclass
class NotifyClient:
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def call(self, method, params=None):
        self.calls.append((method, params or {}))
        return True


def found(missed: int = 0, by_event: int = 0, judged: int | None = None) -> AuditResult:
    kind = KindResult("crm.deal", judged=judged if judged is not None else missed + by_event)
    kind.missed, kind.by_event, kind.delivered = missed, by_event, by_event
    kind.first_missed_at = 1000.0 if missed else 0.0
    return AuditResult("m", [kind])


def round_for(results: list[AuditResult], auth: str = "oauth", outgoing: bool = False):
    portals = InMemoryPortalStore()
    portals.save(PORTAL)
    delivery = InMemoryDeliveryStore()
    if auth == "webhook":
        webhook_connected(delivery, "m", outgoing, 1)
    audits = InMemoryAuditStore()
    client = NotifyClient()
    route = RouteKeeper(
        delivery, portals, load_manifest(), lambda p: client, lambda: AppWorld((), "https://list", 0.0)
    )
    probes: list[str] = []
    fake = FakeAudit(results)
    rnd = AuditRound(
        audits,
        delivery,
        portals,
        route,
        make_audit=lambda m: fake,  # type: ignore[arg-type,return-value]
        make_client=lambda p: client,
        manifest=load_manifest(),
        policy=AuditPolicy(),
        probe=probes.append,
        clock=lambda: 5000.0,
    )
    return rnd, delivery, audits, client, probes, fake


def test_missed_changes_count_probe_at_once_and_switch_the_route_at_the_second_strike(monkeypatch):
    emitted: list[tuple[str, float, dict[str, str]]] = []
    monkeypatch.setattr(metrics, "emit", lambda name, value=1, **dims: emitted.append((name, value, dims)))
    rnd, delivery, audits, client, probes, fake = round_for([found(missed=2), found(missed=1)])
    schedule_audit(audits, "m", 0)
    first = rnd.due()
    assert first["missed"] == 2 and probes == ["m"] and first["switched"] == []
    assert ("EventsMissed", 2, {"reason": "no_event"}) in emitted
    assert audits.get("m").strikes == 1 and audits.get("m").next_at == 5000 + 300
    assert fake.calls[0]["grace_s"] == 120 and fake.calls[0]["polling"] is False
    second = rnd.one("m")
    assert second["switched_to"] == "pull" and probes == ["m"]
    state = delivery.get("m")
    assert state.history[-1]["evidence"]["detector"] == "change audit"
    assert state.history[-1]["evidence"]["strikes"] == 2
    assert [m for m, _ in client.calls] == ["im.notify.system.add"]  # told once, in the portal's words
    assert "Events from this Bitrix24 do not reach" in client.calls[0][1]["MESSAGE"]
    assert ("DeliveryBlocked", 1, {}) in emitted


def test_an_audit_with_every_change_delivered_resets_the_strikes_and_confirms_delivery():
    rnd, delivery, audits, _client, probes, _ = round_for([found(missed=1), found(by_event=3)])
    rnd.one("m")
    rnd.one("m")
    assert audits.get("m").strikes == 0 and delivery.get("m").mode == M.ONLINE
    assert delivery.get("m").last_confirmed_at == 5000


def test_a_webhook_portal_is_polled_when_its_events_stop_and_back_when_they_come(monkeypatch):
    rnd, delivery, audits, client, probes, fake = round_for(
        [found(missed=1), found(missed=1), found(by_event=1)], auth="webhook", outgoing=True
    )
    rnd.one("m")
    assert rnd.one("m")["switched_to"] == "polling" and probes == []  # no probe through a webhook
    assert "TAG" not in client.calls[0][1]  # a tag needs the app's CLIENT_ID
    assert PortalState.ACTIVE and "unreachable" in str(rnd.portals.get("m").capabilities["isolation"])
    assert rnd.one("m")["switched_to"] == "webhook"
    assert fake.calls[2]["polling"] is True and fake.calls[2]["grace_s"] == 60
    assert len(client.calls) == 2 and "again" in client.calls[1][1]["MESSAGE"]
    assert audits.get("m").next_at == 5000 + 300


def test_a_portal_without_listable_objects_or_gone_leaves_the_schedule():
    rnd, _delivery, audits, *_ = round_for([])
    schedule_audit(audits, "m", 0)
    rnd.portals.save(replace(rnd.portals.get("m"), state=PortalState.DELETED))
    assert rnd.one("m")["reason"] == "portal_not_active" and not audits.get("m").active
    specs, events = wanted_objects(load_manifest(), {"features": {"crm": {"status": "missing"}}})
    assert [s.kind for s in specs] == ["crm.contact"] and "ONCRMDEALADD" not in events


@pytest.mark.parametrize("kinds,polled,expected", [(1, False, 13.0), (2, True, 122.0)])
def test_the_audits_request_budget_per_hour_is_what_the_settings_say(kinds, polled, expected):
    assert AuditPolicy().requests_per_hour(kinds, polled) == expected


def test_each_portal_of_a_round_gets_its_own_share_of_time():
    import time

    from b24core.delivery.audit_round import PORTAL_SHARE_S

    rnd, _delivery, audits, *_rest, fake = round_for([found()])
    schedule_audit(audits, "m", 0)
    before = time.monotonic()
    rnd.due()  # no deadline for the whole round: the portal still gets only its share
    deadline = fake.calls[0]["deadline"]
    assert deadline is not None and before < deadline <= time.monotonic() + PORTAL_SHARE_S
