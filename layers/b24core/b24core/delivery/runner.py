"""OfflinePullFunction's work: delivery probes and offline pulls, per portal or on a schedule.

Events it accepts:

* ``{"action": "pull_due"}`` — the every-minute schedule: every portal with offline work (pull or
  lossless mode, bindings to remove, records to drain), read through gsi1;
* ``{"action": "probe_due"}`` — the probe schedule: judge probes past their deadline (missed → pull
  mode, the admin told once) and send the probes that are due (hourly for boxes, daily for cloud);
* ``{"action": "probe", "member_id": M}`` — probe now (``b24app portals probe``);
* ``{"action": "probe_arrived", "member_id": M, "probe_id": P}`` — from intake: ONAPPTEST arrived;
* ``{"action": "pull", "member_id": M}`` — from intake on ONOFFLINEEVENT, or by hand;
* ``{"action": "set_mode", "member_id": M, "mode": "online|lossless"}`` — ``b24app portals set-mode``;
* ``{"action": "status", "member_id": M}``.

Answers carry states and counts, never a token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from logging import INFO
from typing import Any

from b24core.aws import metrics
from b24core.aws.logs import log_event
from b24core.aws.settings import DeliveryPolicy
from b24core.capabilities.report import CapabilityReport
from b24core.delivery.audit_round import AuditRound
from b24core.delivery.fleet import due_pages, run_round
from b24core.delivery.modes import DeliveryMode, ProbeOutcome, Trigger
from b24core.delivery.offline import OfflinePuller, PullResult
from b24core.delivery.offline_bind import feature_events
from b24core.delivery.probe import AppWorld, Prober, advice
from b24core.delivery.route import RouteKeeper
from b24core.delivery.store import DeliveryState, DeliveryStore, as_dict, mutate
from b24core.portals.keys import ONLINE_PARTITION, PULL_PARTITION
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.store import PortalStore

MAX_PULL_PORTALS = 100_000
#: Where the last pull round of this process stopped: the next one starts after it (a fair rotation when
#: the pull fleet outgrows one run; a cold process starts from the top).
_resume_cache: dict[str, str] = {}


def _resume_after(members: list[str], name: str) -> list[str]:
    last = _resume_cache.get(name)
    if last is None or last not in members:
        return members
    at = members.index(last) + 1
    return members[at:] + members[:at]


@dataclass
class DeliveryRunner:
    portals: PortalStore
    store: DeliveryStore
    prober: Prober
    puller: OfflinePuller
    make_client: Callable[[Portal], Any]
    manifest: Any
    policy: DeliveryPolicy
    default_events_url: str
    world: Callable[[], AppWorld]
    audits: AuditRound | None = None
    clock: Callable[[], float] = time.time
    route: RouteKeeper | None = None  # built from the fields above unless given

    def __post_init__(self) -> None:
        if self.route is None:
            self.route = RouteKeeper(
                self.store, self.portals, self.manifest, self.make_client, self.world, self.clock
            )

    @property
    def keeper(self) -> RouteKeeper:
        assert self.route is not None
        return self.route

    # ---- helpers
    def _active(self, member_id: str) -> Portal | None:
        portal = self.portals.get(member_id)
        if portal is None or portal.state != PortalState.ACTIVE:
            mutate(self.store, member_id, lambda s: replace(s, active=False) if s.active else None)
            return None
        return portal

    def _events_url(self, portal: Portal, state: DeliveryState | None = None) -> str:
        caps_url = CapabilityReport.of(portal.capabilities).events_url
        return (state.events_url if state else "") or caps_url or self.default_events_url

    @staticmethod
    def _kind(portal: Portal) -> str:
        return CapabilityReport.of(portal.capabilities).kind

    def _events(self, portal: Portal) -> list[str]:
        return feature_events(self.manifest, portal.capabilities or {})

    def _view(self, member_id: str, **extra: Any) -> dict[str, Any]:
        state = self.store.get(member_id) or DeliveryState(member_id)
        view = as_dict(state)
        if state.blocked:
            view["advice"] = advice(self.world())
        view.update(extra)
        return view

    # ---- probes
    def probe(self, member_id: str) -> dict[str, Any]:
        portal = self._active(member_id)
        if portal is None:
            return {"error": "portal_not_active", "member_id": member_id}
        state = self.store.get(member_id)
        self.prober.send(
            self.make_client(portal), member_id, self._events_url(portal, state), self._kind(portal)
        )
        return self._view(member_id)

    def probe_arrived(self, member_id: str, probe_id: str, deadline: float | None = None) -> dict[str, Any]:
        portal = self._active(member_id)
        if portal is None:
            return {"error": "portal_not_active", "member_id": member_id}
        _state, switched = self.prober.arrived(member_id, probe_id)
        pulled = None
        if switched:
            metrics.emit("DeliveryRestored")
            self.keeper.announce(portal)
            pulled = self._pull(portal, deadline)  # remove the offline bindings, drain what is left
        return self._view(member_id, pull=pulled.as_dict() if pulled else None)

    def probe_due(self, deadline: float | None = None) -> dict[str, Any]:
        """Every probe due (or past its deadline), portals in parallel (delivery/fleet.py)."""
        now = int(self.clock())
        counts: dict[str, Any] = {"judged_missed": 0, "sent": 0, "skipped": 0}

        started: dict[str, dict[str, int]] = {}  # each portal's counts, kept when its probe fails midway

        def one(member_id: str) -> dict[str, int]:
            mine = started[member_id] = {"judged_missed": 0, "sent": 0, "skipped": 0}
            self._probe_one(member_id, deadline, mine)
            return mine

        def add(_member_id: str, mine: dict[str, int] | None) -> None:
            for key, n in (mine or {}).items():
                counts[key] = counts.get(key, 0) + n

        report = run_round(
            "probe",
            due_pages(self.store.due, now, ONLINE_PARTITION, PULL_PARTITION),
            one,
            add,
            concurrency=self.policy.round_concurrency,
            deadline=deadline,
            period_s=self.policy.round_period_s,
            failed="delivery probe failed",
            on_error=lambda member_id: started[member_id] | {"failed": 1},
        )
        return counts | {"round": report.as_dict()}

    def _probe_one(self, member_id: str, deadline: float | None, counts: dict[str, int]) -> None:
        portal = self._active(member_id)
        state = self.store.get(member_id)
        if portal is None or state is None:
            counts["skipped"] += 1
            return
        if state.probe_outcome == ProbeOutcome.PENDING:
            state, missed = self.prober.judge(member_id)
            if missed:
                counts["judged_missed"] += 1
                metrics.emit("DeliveryBlocked")
                self.keeper.announce(portal)
                if state.has_offline_work:
                    self._pull(portal, deadline)
            return
        if self.audits is not None:
            self.audits.start(member_id)  # portals installed before the audit existed join it here
        self.prober.send(
            self.make_client(portal), member_id, self._events_url(portal, state), self._kind(portal)
        )
        counts["sent"] += 1

    # ---- pulls
    def _pull(self, portal: Portal, deadline: float | None) -> PullResult:
        result = self.puller.run(self.make_client(portal), portal, self._events(portal), deadline)
        state = self.store.get(portal.member_id)
        if state is None:
            return result
        if result.outcome == "unbound" and state.mode == DeliveryMode.PULL:
            # Nothing to pull: the change audit polls the portal until the bindings are made.
            _, changed = self.keeper.switch(
                portal.member_id,
                Trigger.BIND_REFUSED,
                "the portal refused offline bindings",
                {"detector": "offline bindings", "error": state.bind_error},
            )
            if changed:
                self.keeper.announce(portal)
        elif state.offline_bound and state.mode == DeliveryMode.POLLING:
            self.keeper.switch(
                portal.member_id,
                Trigger.BIND_MADE,
                "offline bindings made",
                {"detector": "offline bindings", "events": list(state.offline_events)},
            )
        return result

    def pull(self, member_id: str, deadline: float | None = None) -> dict[str, Any]:
        state = self.store.get(member_id)
        if state is None or not state.has_offline_work:
            return {"member_id": member_id, "outcome": "idle", "reason": "the portal is not in pull mode"}
        portal = self._active(member_id)
        if portal is None:
            return {"error": "portal_not_active", "member_id": member_id}
        return self._pull(portal, deadline).as_dict()

    def pull_due(self, deadline: float | None = None) -> dict[str, Any]:
        """Every portal with offline work, in parallel; when they outgrow the time, the next run
        continues after the last one this process reached (delivery/fleet.py)."""
        members = _resume_after(self.store.members(PULL_PARTITION, MAX_PULL_PORTALS), "pull")
        counts: dict[str, Any] = {"portals": len(members), "enqueued": 0}

        def page(size: int, tried: set[str]) -> list[str]:
            return [m for m in members if m not in tried][:size]

        def one(member_id: str) -> PullResult | None:
            portal = self._active(member_id)
            return self._pull(portal, deadline) if portal is not None else None

        def add(member_id: str, result: PullResult | None) -> None:
            _resume_cache["pull"] = member_id
            if result is None:
                return
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
            counts["enqueued"] += result.enqueued

        report = run_round(
            "pull",
            page,
            one,
            add,
            concurrency=self.policy.pull_concurrency,
            deadline=deadline,
            period_s=self.policy.round_period_s,
            failed="offline pull failed",
        )
        return counts | {"round": report.as_dict()}

    # ---- operator
    def set_mode(self, member_id: str, mode: str, deadline: float | None = None) -> dict[str, Any]:
        if mode not in (DeliveryMode.ONLINE, DeliveryMode.LOSSLESS):
            return {"error": "bad_mode", "message": "choose online or lossless (pull mode is automatic)"}
        portal = self._active(member_id)
        if portal is None:
            return {"error": "portal_not_active", "member_id": member_id}
        now = int(self.clock())
        url = self._events_url(portal)

        def chosen(s: DeliveryState) -> DeliveryState:
            if mode == DeliveryMode.LOSSLESS:
                trigger = Trigger.LOSSLESS_ON
            else:
                trigger = Trigger.LOSSLESS_OFF_BLOCKED if s.blocked else Trigger.LOSSLESS_OFF
            base = replace(
                s,
                events_url=s.events_url or url,
                kind=s.kind or self._kind(portal),
                active=True,
                bind_retry_at=0,
            )
            return base.on(trigger, now, "set by an operator")

        state = mutate(self.store, member_id, chosen)
        log_event(INFO, "delivery mode set", "set_mode", member_id, str(state.mode))
        pulled = self._pull(portal, deadline)
        return self._view(member_id, pull=pulled.as_dict())

    def status(self, member_id: str) -> dict[str, Any]:
        return self._view(member_id)

    def rebind(self, member_id: str, deadline: float | None = None) -> dict[str, Any]:
        """Make the portal's offline bindings again now (``b24app portals rebind``): an admin removed
        them, or they were refused and the operator fixed the cause. Forgets they were made and lets
        the pull reconcile them at once; a portal whose mode wants none is left alone."""
        state = self.store.get(member_id)
        if state is None or not state.wants_offline:
            return {
                "member_id": member_id,
                "outcome": "idle",
                "reason": "the portal's mode needs no bindings",
            }
        portal = self._active(member_id)
        if portal is None:
            return {"error": "portal_not_active", "member_id": member_id}
        mutate(self.store, member_id, lambda s: replace(s, offline_bound=False, bind_retry_at=0))
        return self._pull(portal, deadline).as_dict()

    # ---- after the capability check at install / update (runs in CapabilityCheckFunction)
    def after_check(self, client: Any, member_id: str, report: dict[str, Any]) -> None:
        """Bindings were made afresh (install, reinstall, update removes them all): the offline ones
        are gone, so the next pull run re-binds them if the mode wants them; then probe."""
        seen = CapabilityReport.of(report)
        kind, url, finished = seen.kind, seen.events_url, seen.install_finished
        mutate(
            self.store,
            member_id,
            lambda s: replace(
                s,
                active=True,
                kind=kind or s.kind,
                events_url=url or s.events_url,
                offline_bound=False,
                bind_retry_at=0,
            ),
        )
        self.prober.send(client, member_id, url, kind, finished if isinstance(finished, bool) else None)
        if self.audits is not None:
            self.audits.start(member_id)


# ---------------------------------------------------------------- Lambda wiring
