"""The change audit on its schedule: every portal whose features have a listable object, each when its
audit is due (gsi1, never a scan), whatever its route — and what the findings do to the route.

* A route with events (online, pull, lossless, outgoing webhook) is audited every ``interval_s``; a
  missed change is sent at once and counted (``EventsMissed``). ``strikes`` audits in a row with misses
  switch the route (OAuth: pull the offline queue; webhook: polling); for an OAuth portal the first
  miss also sends a delivery probe, whose verdict comes sooner.
* A polled route is audited every ``poll_interval_s`` with no grace: the listing is the delivery. A
  webhook portal with an outgoing webhook waits ``poll_grace_s`` for its events, and when they are
  found again the route goes back to the outgoing webhook.

Catch-up needs nothing more: the audit's cursor never passes a change it has not judged, so whenever
a block began, every change since the last judged one is listed and sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from logging import WARNING
from typing import Any

from b24core.aws import metrics
from b24core.aws.logs import log_event
from b24core.aws.settings import AuditPolicy
from b24core.capabilities.objects import ObjectSpec
from b24core.capabilities.report import Status, feature_status
from b24core.delivery.audit import ChangeAudit
from b24core.delivery.audit_cursor import AuditResult
from b24core.delivery.audit_store import AuditState, AuditStore, schedule_audit
from b24core.delivery.fleet import due_pages, run_round
from b24core.delivery.modes import DeliveryMode, Trigger
from b24core.delivery.route import RouteKeeper
from b24core.delivery.store import DeliveryState, DeliveryStore, mutate
from b24core.portals.keys import AUDIT_PARTITION
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.store import PortalStore
from b24core.portals.versioned import update

RETRY_SOON_S = 60  # an audit that could not finish continues this soon
#: One portal's share of a round: a slow box's answers end its own audit early (it continues from its
#: cursor next time), never the other portals' audits of the same round.
PORTAL_SHARE_S = 15.0


def wanted_objects(manifest: Any, capabilities: dict[str, Any]) -> tuple[list[ObjectSpec], set[str]]:
    """The kinds to audit on this portal and the events its handlers take: those of every feature the
    portal is not known to lack."""
    specs: dict[str, ObjectSpec] = {}
    events: set[str] = set()
    for feature in manifest.features:
        if feature_status(capabilities or {}, feature.name) == Status.MISSING:
            continue
        events.update(feature.events)
        for spec in feature.objects:
            specs.setdefault(spec.kind, spec)
    return [s for s in specs.values() if set(s.events) & events], events


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).isoformat(timespec="seconds") if ts else ""


@dataclass(eq=False)  # a service, compared by identity
class AuditRound:
    audits: AuditStore
    delivery: DeliveryStore
    portals: PortalStore
    route: RouteKeeper
    make_audit: Callable[[str], ChangeAudit]  # per portal: its spend() takes that portal's budget
    make_client: Callable[[Portal], Any]
    manifest: Any
    policy: AuditPolicy
    #: Sends a delivery probe now (OAuth portals), when the audit first finds a miss.
    probe: Callable[[str], Any] | None = None
    clock: Callable[[], float] = time.time

    # ---- the schedule
    def due(self, deadline: float | None = None) -> dict[str, Any]:
        """Every portal whose audit is due, in parallel, each within its own share of the time."""
        now = int(self.clock())
        counts: dict[str, Any] = {"audited": 0, "failed": 0, "missed": 0, "polled": 0, "switched": []}

        def audit(member_id: str) -> dict[str, Any] | None:
            share = time.monotonic() + PORTAL_SHARE_S
            return self.one(member_id, share if deadline is None else min(deadline, share))

        def retry_soon(member_id: str) -> None:
            self._later(member_id, RETRY_SOON_S)

        def add(member_id: str, answer: dict[str, Any] | None) -> None:
            if answer is None:
                counts["failed"] += 1
                return
            if answer.get("audited"):
                counts["audited"] += 1
                counts["missed"] += answer["result"]["missed"] + answer["result"]["deletes_missed"]
                counts["polled"] += answer["result"]["polled"] + answer["result"]["deletes_polled"]
            if answer.get("switched_to"):
                counts["switched"].append({"member_id": member_id, "to": answer["switched_to"]})

        report = run_round(
            "audit",
            due_pages(self.audits.due, now, AUDIT_PARTITION),
            audit,
            add,
            concurrency=self.policy.round_concurrency,
            deadline=deadline,
            period_s=self.policy.round_period_s,
            failed="change audit failed",
            on_error=retry_soon,
        )
        return counts | {"round": report.as_dict()}

    def start(self, member_id: str) -> None:
        """Put a portal on the audit's schedule (install, re-check), its cursors kept."""
        schedule_audit(self.audits, member_id, int(self.clock()) + self.policy.interval_s)

    def _later(self, member_id: str, delay_s: int) -> None:
        at = int(self.clock()) + delay_s
        update(
            lambda: self.audits.get(member_id),
            self.audits.save,
            lambda s: replace(s, next_at=at) if s is not None else None,
            member_id,
        )

    def _stop(self, member_id: str) -> None:
        update(
            lambda: self.audits.get(member_id),
            self.audits.save,
            lambda s: replace(s, active=False) if s is not None and s.active else None,
            member_id,
        )

    # ---- one portal
    def one(self, member_id: str, deadline: float | None = None) -> dict[str, Any]:
        portal = self.portals.get(member_id)
        if portal is None or portal.state != PortalState.ACTIVE:
            self._stop(member_id)
            return {"member_id": member_id, "audited": False, "reason": "portal_not_active"}
        specs, wanted = wanted_objects(self.manifest, portal.capabilities or {})
        if not specs:
            self._stop(member_id)
            return {"member_id": member_id, "audited": False, "reason": "no_listable_objects"}
        route = self.delivery.get(member_id) or DeliveryState(member_id)
        state = self.audits.get(member_id) or AuditState(member_id)
        polled = route.polled
        grace = (self.policy.poll_grace_s if route.outgoing else 0) if polled else self.policy.grace_s
        since = route.last_confirmed_at or portal.installed_at or self.clock()
        feeds, result = self.make_audit(member_id).run(
            self.make_client(portal),
            member_id,
            portal.domain,
            state.feeds,
            specs,
            wanted,
            grace_s=grace,
            polling=polled,
            since=since,
            deadline=deadline,
        )
        shown = {
            "every_s": self.policy.poll_interval_s if polled else self.policy.interval_s,
            "grace_s": grace,
            "budget_per_hour": round(self.policy.requests_per_hour(len(specs), polled), 1),
        }
        saved = self._save(state, feeds, result, polled, shown)
        switched = self._decide(portal, route, saved, result)
        if switched:  # the new route's own pace from now on (a polled route: the next minute)
            now_polled = switched == str(DeliveryMode.POLLING)
            self._later(member_id, self.policy.poll_interval_s if now_polled else self.policy.interval_s)
        return {
            "member_id": member_id,
            "audited": True,
            "route": str((self.delivery.get(member_id) or route).mode),
            "switched_to": switched,
            "result": result.as_dict(),
        }

    def _save(
        self,
        state: AuditState,
        feeds: dict[str, Any],
        result: AuditResult,
        polled: bool,
        shown: dict[str, Any],
    ) -> AuditState:
        now = int(self.clock())
        missed = result.total("missed") + result.total("deletes_missed")
        every = self.policy.poll_interval_s if polled else self.policy.interval_s
        if missed:
            metrics.emit("EventsMissed", result.total("missed"), reason="no_event")
        if result.total("deletes_missed"):
            metrics.emit("EventsMissed", result.total("deletes_missed"), reason="deleted")
        if missed:
            log_event(
                WARNING,
                "changes with no event found and sent",
                "audit",
                state.member_id,
                "missed",
                missed=missed,
                judged=result.total("judged"),
            )

        def saved(s: AuditState | None) -> AuditState:
            s = s or AuditState(state.member_id)
            if missed and not polled:
                strikes = s.strikes + 1
            elif result.total("judged") and not polled:
                strikes = 0
            else:
                strikes = s.strikes if not polled else 0
            return replace(
                s,
                feeds=feeds,
                active=True,
                last_at=now,
                next_at=now + (min(RETRY_SOON_S, every) if result.incomplete else every),
                strikes=strikes,
                missed_total=s.missed_total + missed,
                last_missed_at=now if missed else s.last_missed_at,
                last={**result.as_dict(), **shown},
            )

        return (
            update(lambda: self.audits.get(state.member_id), self.audits.save, saved, state.member_id)
            or state
        )

    def _decide(self, portal: Portal, route: DeliveryState, audit: AuditState, result: AuditResult) -> str:
        """What the findings do to the route (RouteKeeper decides; this only reports)."""
        member_id, now = portal.member_id, int(self.clock())
        by_event, missed = result.total("by_event"), result.total("missed") + result.total("deletes_missed")
        if by_event:
            mutate(self.delivery, member_id, lambda s: replace(s, last_confirmed_at=now))
        first = min((k.first_missed_at for k in result.kinds if k.first_missed_at), default=0.0)
        evidence = {
            "detector": "change audit",
            "missed": missed,
            "judged": result.total("judged"),
            "strikes": audit.strikes,
            "first_missed": _iso(first),
        }
        switched = ""
        if missed and route.mode in (DeliveryMode.ONLINE, DeliveryMode.WEBHOOK):
            if route.auth == "oauth" and self.probe is not None and audit.strikes == 1:
                self.probe(member_id)  # the probe's verdict comes sooner than the next strike
            if audit.strikes >= self.policy.strikes:
                state, changed = self.route.switch(
                    member_id, Trigger.AUDIT_MISSED, "changes made on the portal brought no event", evidence
                )
                switched = str(state.mode) if changed else ""
        elif by_event and route.auth == "webhook" and route.outgoing and route.mode == DeliveryMode.POLLING:
            state, changed = self.route.switch(
                member_id,
                Trigger.EVENTS_SEEN,
                "events arrive again through the outgoing webhook",
                {"detector": "change audit", "delivered_by_events": by_event},
            )
            switched = str(state.mode) if changed else ""
        if switched:
            self.route.announce(portal)
        return switched
