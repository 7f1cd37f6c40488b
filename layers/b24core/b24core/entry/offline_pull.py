"""OfflinePullFunction: delivery probes and offline pulls, wired from settings."""

from __future__ import annotations

import time
from functools import lru_cache
from logging import WARNING
from typing import Any

from b24core.aws.logs import log_event
from b24core.delivery.audit import ChangeAudit
from b24core.delivery.audit_round import AuditRound
from b24core.delivery.offline import OfflinePuller
from b24core.delivery.probe import Prober
from b24core.delivery.runner import DeliveryRunner
from b24core.portals.model import Portal


@lru_cache(maxsize=1)
def build_runner() -> DeliveryRunner:
    from b24core.aws.settings import get_settings
    from b24core.capabilities.manifest import load_manifest
    from b24core.delivery.probe import app_world
    from b24core.entry import wiring as runtime
    from b24core.worker.limited_client import LimitedClient

    s = get_settings()
    store = runtime.delivery_store()
    policy = s.delivery

    def make_client(portal: Portal) -> Any:
        # Every call spends the portal's budget shared with the workers (worker/limiter.py).
        return LimitedClient(
            runtime.portal_client(portal),
            runtime.rate_limiter(),
            portal.member_id,
            time.sleep,
            s.worker_max_wait_s,
        )

    manifest = load_manifest()
    runner = DeliveryRunner(
        portals=runtime.portal_store(),
        store=store,
        prober=Prober(store, policy),
        puller=OfflinePuller(
            store,
            runtime.lease_store(),
            runtime.queue_writer(),
            policy,
        ),
        make_client=make_client,
        manifest=manifest,
        policy=policy,
        default_events_url=runtime.events_url(s),
        world=lambda: app_world(policy),
    )
    runner.audits = AuditRound(
        audits=runtime.audit_store(),
        delivery=store,
        portals=runtime.portal_store(),
        route=runner.keeper,
        make_audit=lambda member_id: ChangeAudit(
            runtime.seen_marks(),
            runtime.known_ids(),
            runtime.queue_writer().send,
            overlap_s=s.audit.overlap_s,
            max_pages=s.audit.max_pages,
            reconcile_every_s=s.audit.reconcile_s,
            reconcile_requests=s.audit.reconcile_requests,
            spend=spender(member_id),
        ),
        make_client=lambda portal: runtime.portal_client(portal),
        manifest=manifest,
        policy=s.audit,
        probe=runner.probe,
    )
    return runner


def spender(member_id: str) -> Any:
    """Takes one request of the portal's REST budget, shared with the event workers (waiting at most
    ``worker_max_wait_s`` for it), or raises QUERY_LIMIT_EXCEEDED."""
    from b24core.aws.settings import get_settings
    from b24core.bitrix.errors import QueryLimitExceeded
    from b24core.entry import wiring as runtime

    budget, max_wait = runtime.rate_limiter(), get_settings().worker_max_wait_s

    def spend(method: str) -> None:
        waited = 0.0
        while (delay := budget.acquire(member_id, method=method)) > 0:
            if waited + delay > max_wait:
                raise QueryLimitExceeded("the portal's REST budget is spent for now")
            time.sleep(delay)  # the shared budget's own wait, bounded by worker_max_wait_s
            waited += delay

    return spend


def _deadline(context: Any, slack_s: float = 8.0) -> float | None:
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        remaining = float(context.get_remaining_time_in_millis()) / 1000
        return time.monotonic() + max(1.0, remaining - slack_s)
    return None


def handle_delivery_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    runner = build_runner()
    action = event.get("action")
    member_id = event.get("member_id")
    deadline = _deadline(context)
    if action == "pull_due":
        return runner.pull_due(deadline)
    if action == "probe_due":
        return runner.probe_due(deadline)
    if action in ("audit_due", "poll_due"):
        assert runner.audits is not None
        return runner.audits.due(deadline)
    if not isinstance(member_id, str) or not member_id or len(member_id) > 64:
        return {"error": "unknown_action"}
    if action == "probe":
        return runner.probe(member_id)
    if action == "probe_arrived":
        return runner.probe_arrived(member_id, str(event.get("probe_id") or ""), deadline)
    if action == "pull":
        return runner.pull(member_id, deadline)
    if action == "set_mode":
        return runner.set_mode(member_id, str(event.get("mode") or ""), deadline)
    if action == "status":
        return runner.status(member_id)
    if action == "audit":
        assert runner.audits is not None
        return runner.audits.one(member_id, deadline)
    if action == "rebind":
        return runner.rebind(member_id, deadline)
    return {"error": "unknown_action"}


def after_capability_check(client: Any, report: dict[str, Any]) -> None:
    """The capability check's hook at install and update: probe delivery. Never raises."""
    member_id = str(getattr(getattr(client, "portal", None), "member_id", "") or "")
    if not member_id:
        return
    try:
        build_runner().after_check(client, member_id, report)
    except Exception as exc:  # the probe schedule tries again; the install must not fail for it
        log_event(WARNING, "delivery probe not started", "probe", member_id, "failed", error=exc)
