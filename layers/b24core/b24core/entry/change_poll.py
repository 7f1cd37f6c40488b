"""ChangePollFunction's work, one round a schedule tick:

1. the delivery watchdog for every webhook-connected portal with an outgoing webhook
   (found through gsi1), each at its own slower cadence: a portal whose events stopped arriving is
   switched to change polling here, and polled in step 2 of the same round;
2. one polling round for every webhook-connected portal whose changes are polled (gsi1),

within the Lambda's time and each portal's REST budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from logging import WARNING
from typing import Any

from b24core.aws import metrics
from b24core.aws.logs import log_event
from b24core.bitrix.errors import B24Error
from b24core.portals.states import PortalState


def _spender(member_id: str) -> Callable[[str], None]:
    """Takes one request of the portal's REST budget, shared with the event workers (waiting at most
    ``worker_max_wait_s`` for it), or raises QUERY_LIMIT_EXCEEDED."""
    from b24core.aws.settings import get_settings
    from b24core.entry import wiring as runtime

    budget, max_wait = runtime.rate_limiter(), get_settings().worker_max_wait_s

    def spend(method: str) -> None:
        waited = 0.0
        while (delay := budget.acquire(member_id, method=method)) > 0:
            if waited + delay > max_wait:
                raise B24Error("the portal's REST budget is spent for now", code="QUERY_LIMIT_EXCEEDED")
            time.sleep(delay)  # the shared budget's own wait, bounded by worker_max_wait_s
            waited += delay

    return spend


def watch_round(wanted: set[str], deadline: float | None = None) -> dict[str, Any]:
    """The delivery watchdog over every outgoing-webhook portal that is due."""
    from b24core.aws.settings import get_settings
    from b24core.capabilities.manifest import load_manifest
    from b24core.delivery.watchdog import DeliveryWatchdog
    from b24core.entry import wiring as runtime

    s = get_settings()
    counts: dict[str, Any] = {"checked": 0, "failed": 0, "verdicts": {}, "switched": []}
    connections = runtime.webhook_store().watched()
    if not connections:
        return counts
    store = runtime.watch_store()
    arrivals = runtime.arrivals()
    manifest = load_manifest()
    for conn in connections:
        if deadline is not None and time.monotonic() > deadline:
            break
        watchdog = DeliveryWatchdog(
            store,
            runtime.webhook_store(),
            runtime.portal_store(),
            runtime.poll_store(),
            arrivals,
            manifest,
            interval_s=s.watchdog_interval_s,
            grace_s=s.watchdog_grace_s,
            max_pages=s.poll_max_pages,
            spend=_spender(conn.member_id),
        )
        if not watchdog.due(conn.member_id):
            continue
        portal = runtime.portal_store().get(conn.member_id)
        if portal is None or portal.state != PortalState.ACTIVE:
            continue
        try:
            result = watchdog.check(runtime.portal_client(portal), conn, wanted)
        except Exception as exc:  # whatever one portal answered, the round goes on for the others
            counts["failed"] += 1
            metrics.emit("PortalRoundsFailed", round="watchdog", reason=type(exc).__name__)
            log_event(WARNING, "delivery watchdog failed", "watchdog", conn.member_id, error=exc)
            continue
        counts["checked"] += 1
        if result.verdict is not None:
            counts["verdicts"][conn.member_id] = str(result.verdict)
        if result.switched_to:
            counts["switched"].append({"member_id": conn.member_id, "to": result.switched_to})
    return counts


def run_round(deadline: float | None = None) -> dict[str, Any]:
    from b24core.aws.settings import get_settings
    from b24core.capabilities.manifest import load_manifest
    from b24core.delivery.polling import ChangePoller
    from b24core.entry import wiring as runtime

    s = get_settings()
    wanted = set(load_manifest().events())
    watched = watch_round(wanted, deadline)
    writer = runtime.queue_writer()
    polled = failed = 0
    members = runtime.webhook_store().polled_members()
    # Switched this round: polled now (the index may not show them yet), from before the first miss.
    members += [m["member_id"] for m in watched["switched"] if m["to"] == "change polling"]
    for member_id in dict.fromkeys(members):
        if deadline is not None and time.monotonic() > deadline:
            break
        portal = runtime.portal_store().get(member_id)
        if portal is None or portal.state != PortalState.ACTIVE:
            continue
        poller = ChangePoller(
            runtime.poll_store(),
            writer.send,
            overlap_s=s.poll_overlap_s,
            reconcile_every_s=s.poll_reconcile_s,
            max_pages=s.poll_max_pages,
            spend=_spender(member_id),
        )
        try:
            poller.poll(runtime.portal_client(portal), wanted)
            polled += 1
        except Exception as exc:  # whatever one portal answered, the round goes on for the others
            failed += 1
            metrics.emit("PortalRoundsFailed", round="poll", reason=type(exc).__name__)
            log_event(WARNING, "poll round failed", "poll", member_id, error=exc)
    return {"polled": polled, "failed": failed, "watchdog": watched}


def handle_poll_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    deadline = None
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        deadline = time.monotonic() + max(0.0, context.get_remaining_time_in_millis() / 1000 - 10)
    return run_round(deadline)
