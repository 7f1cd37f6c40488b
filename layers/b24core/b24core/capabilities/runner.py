"""CapabilityCheckFunction's work: check one portal (install, ONAPPUPDATE, on demand) or every portal
whose re-check is due (schedule), and keep the per-portal record, history and schedule.

Events it accepts:

* ``{"action": "check", "member_id": M, "events_url": U, "trigger": "install|update|manual",
  "budget_s": S}`` — check now; the answer is the report (no secrets in it);
* ``{"action": "recheck_due"}`` — the schedule: portals whose re-check is due, through the index; after
  a manifest change first every portal checked with another manifest (b24core.capabilities.rollout).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from logging import INFO, WARNING
from typing import Any

from b24core.aws import metrics
from b24core.aws.logs import log_event
from b24core.capabilities.check import PortalFailure, check_portal
from b24core.capabilities.manifest import Manifest
from b24core.capabilities.notices import plan_notices
from b24core.capabilities.report import (
    Status,
    carry_last_known,
    history_changes,
    next_check_at,
    unknown_report,
)
from b24core.capabilities.rollout import FINGERPRINT, Rollout, checked_with
from b24core.capabilities.store import CapabilityStore
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.store import PortalStore
from b24core.portals.versioned import update
from b24core.tokens.client import PortalClient
from b24core.tokens.outcomes import ReauthRequired

#: Requests one check costs at most: the survey batch and the bind/notify batch.
CHECK_COST = 2.0
TRIGGERS = ("install", "update", "schedule", "manual", "manifest")


@dataclass
class CapabilityRunner:
    portals: PortalStore
    caps: CapabilityStore
    manifest: Manifest
    make_client: Callable[[Portal, float], PortalClient]
    recheck_interval_s: int
    recheck_soon_s: int
    http_timeout_s: float = 10.0
    clock: Callable[[], float] = time.time
    #: Runs after an install/update check (the delivery probe, b24core.delivery.runner).
    after_check: Callable[[PortalClient, dict[str, Any]], None] | None = None
    #: When the portal refuses the check: why, if a blocked cloud service explains it.
    diagnose: Callable[[PortalClient, Exception], dict[str, Any] | None] | None = None
    #: The app's hooks (installed, feature_enabled) after a check is saved: portal, client, before, after.
    on_checked: Callable[[Portal, PortalClient, dict[str, Any], dict[str, Any]], None] | None = None
    #: Spend a re-check's requests from the portal's REST budget: 0 when spent, else seconds to wait.
    budget: Callable[[str, float], float] | None = None

    def check(
        self, member_id: str, events_url: str, trigger: str = "manual", budget_s: float | None = None
    ) -> dict[str, Any]:
        portal = self.portals.get(member_id)
        if portal is not None and portal.newer_release:  # its report could not be saved: ask nothing
            return {"error": "newer_release", "member_id": member_id}
        if portal is None or portal.state != PortalState.ACTIVE:
            return {"error": "portal_not_active", "member_id": member_id}
        previous = dict(portal.capabilities or {})
        events_url = events_url or str(previous.get("events_url") or "")
        timeout = min(self.http_timeout_s, budget_s) if budget_s else self.http_timeout_s
        client = self.make_client(portal, max(1.0, timeout))
        now = int(self.clock())
        planner = partial(plan_notices, manifest=self.manifest, language=portal.language)
        outcome = "ok"
        try:
            report = check_portal(
                client,
                self.manifest,
                events_url,
                previous=previous,
                plan_notices=planner,
                fallback_admin=portal.user_id,
                clock=self.clock,
            )
        except PortalFailure as exc:  # the portal could not be asked: unknown, never missing; re-check soon
            outcome = "unknown"
            report = unknown_report(self.manifest, previous, _reason(exc), now, events_url)
            found = self.diagnose(client, exc) if self.diagnose is not None else None
            if found:
                report["isolation"] = found
        if "isolation" not in report and getattr(client, "webhook", None) and previous.get("isolation"):
            report["isolation"] = previous["isolation"]  # connected by webhook: OAuth still cannot work
        carry_last_known(previous, report)
        if outcome == "ok" and not report.get("bind_errors"):
            report[FINGERPRINT] = self.manifest.fingerprint  # checked and bound with this manifest
        elif previous.get(FINGERPRINT):
            report[FINGERPRINT] = previous[FINGERPRINT]
        report["trigger"] = trigger if trigger in TRIGGERS else "manual"
        report["next_check_at"] = next_check_at(report, now, self.recheck_interval_s, self.recheck_soon_s)
        changes = history_changes(previous, report)
        saved = self._save(member_id, report)
        if saved is None:
            return {"error": "portal_not_active", "member_id": member_id}
        if changes:
            self.caps.add_history(
                member_id, now, {"at": now, "trigger": report["trigger"], "changes": changes}
            )
        self.caps.schedule_recheck(member_id, report["next_check_at"])
        log_event(
            INFO,
            "capabilities checked",
            "capability_check",
            member_id,
            outcome,
            trigger=report["trigger"],
            features={n: f["status"] for n, f in report["features"].items()},
            bound=len(report.get("bound") or []),
            bind_errors=sorted(report.get("bind_errors") or {}),
            changed=len(changes),
            reason=",".join(sorted((report.get("errors") or {}).values())) or None,
        )
        if self.after_check is not None and report["trigger"] in ("install", "update"):
            self.after_check(client, report)
        if self.on_checked is not None:
            self.on_checked(saved, client, previous, report)
        return report

    def _save(self, member_id: str, report: dict[str, Any]) -> Portal | None:
        def with_report(current: Portal | None) -> Portal | None:
            if current is None or current.state != PortalState.ACTIVE:
                return None  # uninstalled meanwhile: leave its record alone
            return replace(current, capabilities=report)

        saved = update(lambda: self.portals.get(member_id), self.portals.save, with_report, member_id)
        return saved if saved is not None and saved.state == PortalState.ACTIVE else None

    def recheck_due(
        self, default_events_url: str, deadline: float | None = None, limit: int = 200
    ) -> dict[str, int]:
        now = int(self.clock())
        done = skipped = failed = deferred = 0
        rollout = self._rollout(now, deadline)
        for member_id in self.caps.due_rechecks(now, limit):
            if deadline is not None and time.monotonic() > deadline:
                break
            portal = self.portals.get(member_id)
            if portal is not None and portal.newer_release:  # kept for the newer release, out of the way
                self.caps.schedule_recheck(member_id, now + self.recheck_soon_s)
                skipped += 1
                continue
            if portal is None or portal.state != PortalState.ACTIVE:
                self.caps.schedule_recheck(member_id, None)
                skipped += 1
                continue
            wait = self.budget(member_id, CHECK_COST) if self.budget is not None else 0.0
            if wait > 0:  # the portal's budget is spent by its own work: ask it a little later
                self.caps.schedule_recheck(member_id, now + int(wait) + 1)
                deferred += 1
                continue
            url = str(portal.capabilities.get("events_url") or default_events_url)
            newer = checked_with(portal) != self.manifest.fingerprint
            try:
                self.check(member_id, url, trigger="manifest" if newer else "schedule")
            except Exception as exc:  # one portal's answer never stops the others' re-checks
                if isinstance(exc, ReauthRequired) or isinstance(exc.__cause__, ReauthRequired):
                    # No way to ask it (tokens lapsed, no webhook): not hourly noise; its admin reopening
                    # the app (ONAPPUPDATE, a reinstall) or a connected webhook checks it again.
                    self.caps.schedule_recheck(member_id, None)
                    skipped += 1
                    continue
                failed += 1
                metrics.emit("PortalRoundsFailed", round="recheck", reason=type(exc).__name__)
                log_event(WARNING, "capability re-check failed", "recheck", member_id, error=exc)
                with contextlib.suppress(Exception):  # asked again later, not at every round
                    self.caps.schedule_recheck(member_id, now + 3600)
                continue
            done += 1
        return {"rechecked": done, "skipped": skipped, "failed": failed, "deferred": deferred, **rollout}

    def _rollout(self, now: int, deadline: float | None) -> dict[str, Any]:
        """Every portal checked with another manifest onto the schedule (resumable; its own share of time)."""
        share = None if deadline is None else time.monotonic() + max(0.0, deadline - time.monotonic()) / 3
        if not hasattr(self.portals, "listed_page"):
            return {}
        walk = Rollout(self.portals, self.caps, self.manifest.fingerprint)  # type: ignore[arg-type]
        try:
            result = walk.advance(now, share)
        except Exception as exc:  # the due re-checks still run; the walk goes on next time
            log_event(WARNING, "manifest rollout step failed", "recheck", error=exc)
            return {}
        if result["marked"]:
            log_event(INFO, "portals due for a changed manifest", "recheck", None, "marked", **result)
        return {"manifest_marked": result["marked"], "manifest_done": result["done"]}


def _reason(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__}:{code}" if isinstance(code, str) and code else type(exc).__name__


# ---------------------------------------------------------------- Lambda wiring


def missing(capabilities: dict[str, Any], feature: str) -> bool:
    """Is ``feature`` known missing in this stored report? (operators' filters)"""
    info = (capabilities.get("features") or {}).get(feature) or {}
    return info.get("status") == Status.MISSING or info.get("available") is False
