"""A portal's delivery route: the one place that switches it, and the one notifier that tells its admin.

Every detector — the delivery probe, the change audit, the offline bindings, an operator — reports a
``Trigger`` with its evidence; ``RouteKeeper.switch`` applies it through the transition table
(delivery/store.py), keeps the switch in the route's history, and ``announce`` tells the portal's
admin once per change of route, in the portal's language: that events are not reaching the app (and
what to open), or that they do again. Where the app cannot notify (no feature using the notification
method, or the portal lacks it), the reason is kept for ``b24app portals show``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from logging import INFO
from typing import Any

from b24core.aws import metrics
from b24core.aws.logs import log_event
from b24core.bitrix.i18n import language_of, texts
from b24core.capabilities.isolation import ADVICE, ADVICE_RU, LABELS, LABELS_RU, QueueReach, with_queue
from b24core.capabilities.notices import log_notice, notification_feature
from b24core.capabilities.report import CapabilityReport, Status
from b24core.delivery.modes import Trigger
from b24core.delivery.probe import NOTIFY_TAG, AppWorld, back_message, blocked_message
from b24core.delivery.store import DeliveryState, DeliveryStore, mutate
from b24core.portals.model import Portal
from b24core.portals.store import PortalStore
from b24core.portals.versioned import update

NOTIFY_METHOD = "im.notify.system.add"


@dataclass(eq=False)  # a service, compared by identity
class RouteKeeper:
    store: DeliveryStore
    portals: PortalStore
    manifest: Any
    make_client: Callable[[Portal], Any]
    world: Callable[[], AppWorld]
    clock: Callable[[], float] = time.time

    def switch(
        self, member_id: str, trigger: Trigger, reason: str, evidence: dict[str, Any] | None = None
    ) -> tuple[DeliveryState, bool]:
        """Apply a detector's finding; returns (state, whether the route changed)."""
        now = int(self.clock())
        before: list[DeliveryState] = []

        def apply(s: DeliveryState) -> DeliveryState | None:
            before[:] = [s]
            after = s.on(trigger, now, reason, evidence)
            return after if after is not s else None

        state = mutate(self.store, member_id, apply)
        changed = bool(before) and before[0].mode != state.mode
        if changed:
            self.switched(before[0], state)
        return state, changed

    def switched(self, before: DeliveryState, after: DeliveryState) -> None:
        """Count and log a switch (whoever made it); the admin is told by ``announce``."""
        if after.degraded and not before.degraded:
            metrics.emit("DeliveryBlocked")
        elif before.degraded and not after.degraded:
            metrics.emit("DeliveryRestored")
        entry = after.history[-1] if after.history else {}
        log_event(
            INFO,
            "delivery route switched",
            "route",
            after.member_id,
            str(after.mode),
            route_from=str(before.mode),
            trigger=entry.get("trigger"),
            reason=after.reason,
        )

    # ---- the one notifier
    def announce(self, portal: Portal, state: DeliveryState | None = None) -> bool:
        """Tell the admin about the route if it changed since they were last told. Returns whether a
        notice was sent now."""
        state = state or self.store.get(portal.member_id) or DeliveryState(portal.member_id)
        mode = str(state.mode)
        if state.told_mode == mode:
            return False
        was_degraded = state.told_mode not in ("", "online", "webhook", "lossless")
        if not state.degraded and not was_degraded:  # nothing to say: remember the route quietly
            mutate(self.store, portal.member_id, lambda s: replace(s, told_mode=str(s.mode)))
            return False
        if state.auth == "webhook":
            self._record_isolation(portal.member_id, state)
        message = self._message(portal, state)
        reason = self._send(portal, state, message)
        if state.auth == "webhook" and not reason:
            self._mark_told(portal.member_id)
        now = int(self.clock())
        log_notice(portal.member_id, reason, by="delivery route", mode=mode)
        mutate(
            self.store,
            portal.member_id,
            lambda s: replace(
                s,
                told_mode=mode if not reason else s.told_mode,
                notified_at=now if not reason else s.notified_at,
                notice_reason=reason,
            ),
        )
        return not reason

    def _message(self, portal: Portal, state: DeliveryState) -> str:
        title = getattr(self.manifest, "title", "")
        if state.auth == "webhook":
            t = texts(portal.language)
            ru = language_of(portal.language) == "ru"
            if not state.degraded:
                return t["hook_back"]
            since = state.history[-1].get("evidence", {}).get("first_missed") if state.history else None
            return t["hook_blocked"].format(
                label=(LABELS_RU if ru else LABELS)[QueueReach.UNREACHABLE],
                since=t["hook_since"].format(since=since) if since else "",
                advice=(ADVICE_RU if ru else ADVICE)[QueueReach.UNREACHABLE],
            )
        if not state.degraded:
            return back_message(title, portal.language)
        return blocked_message(state, self.world(), title, portal.language)

    def _send(self, portal: Portal, state: DeliveryState, message: str) -> str:
        """The notice through the portal's own REST; returns why it could not be sent ("" when sent)."""
        report = CapabilityReport.of(portal.capabilities)
        admin = report.admin_user_id or portal.user_id or ""
        channel = notification_feature(self.manifest)
        if channel is None:
            return f"the app declares no feature using {NOTIFY_METHOD}"
        if report.status(channel) == Status.MISSING:
            return f"the portal lacks the {channel} feature ({NOTIFY_METHOD})"
        if not admin:
            return "no administrator known"
        params: dict[str, Any] = {"USER_ID": admin, "MESSAGE": message}
        if state.auth != "webhook":  # a TAG needs the app's CLIENT_ID: not through an incoming webhook
            params["TAG"] = NOTIFY_TAG
        try:
            self.make_client(portal).call(NOTIFY_METHOD, params)
        except Exception as exc:  # tried again at the next detector's run
            return f"{NOTIFY_METHOD} failed: {type(exc).__name__}"
        return ""

    def _mark_told(self, member_id: str) -> None:
        """The capability check's isolation notice says the same: it stays quiet for this finding."""

        def told(portal: Portal | None) -> Portal | None:
            if portal is None:
                return None
            caps = dict(portal.capabilities or {})
            summary = str((caps.get("isolation") or {}).get("summary") or "")
            notified = dict(caps.get("notified") or {})
            if notified.get("isolation") == summary:
                return None
            caps["notified"] = {**notified, "isolation": summary}
            return replace(portal, capabilities=caps)

        update(lambda: self.portals.get(member_id), self.portals.save, told, member_id)

    def _record_isolation(self, member_id: str, state: DeliveryState) -> None:
        """A webhook portal's finding about the event queue, in its capability report (the install
        page and ``portals show`` read it there)."""
        queue = QueueReach.UNREACHABLE if state.degraded else QueueReach.OK
        now = int(self.clock())

        def with_finding(portal: Portal | None) -> Portal | None:
            if portal is None:
                return None
            caps = dict(portal.capabilities or {})
            iso = caps.get("isolation") if isinstance(caps.get("isolation"), dict) else None
            if iso is not None and iso.get("event_queue") == queue:
                return None
            caps["isolation"] = with_queue(iso, queue, by="change audit", at=now)
            return replace(portal, capabilities=caps)

        update(lambda: self.portals.get(member_id), self.portals.save, with_finding, member_id)
