"""ChangePollFunction's work: one polling round for every webhook-connected portal without an
outgoing webhook (found through gsi1), within the Lambda's time and each portal's REST budget."""

from __future__ import annotations

import time
from typing import Any

from b24core.logs import logger
from b24core.portals.states import PortalState
from b24core.portals.store import StaleWrite
from b24core.protocol.errors import B24Error
from b24core.tokens import PortalUnavailable


def run_round(deadline: float | None = None) -> dict[str, int]:
    from b24core import runtime
    from b24core.events.offline import QueueWriter
    from b24core.events.worker_runtime import limiter
    from b24core.manifest import load_manifest
    from b24core.polling import ChangePoller, DynamoPollStore
    from b24core.settings import get_settings

    s = get_settings()
    budget = limiter()
    wanted = set(load_manifest().events())
    writer = QueueWriter(runtime.boto_client("sqs"), s.events_queue_url)
    polled = failed = 0
    for member_id in runtime.webhook_store().polled_members():
        if deadline is not None and time.monotonic() > deadline:
            break
        portal = runtime.portal_store().get(member_id)
        if portal is None or portal.state != PortalState.ACTIVE:
            continue

        def spend(method: str, member: str = member_id) -> None:
            waited = 0.0
            while (delay := budget.acquire(member, method=method)) > 0:
                if waited + delay > s.worker_max_wait_s:
                    raise B24Error("the portal's REST budget is spent for now", code="QUERY_LIMIT_EXCEEDED")
                time.sleep(delay)  # the shared budget's own wait, bounded by worker_max_wait_s
                waited += delay

        poller = ChangePoller(
            DynamoPollStore(s.table_name, s.region, s.dynamodb_endpoint),
            writer.send,
            overlap_s=s.poll_overlap_s,
            reconcile_every_s=s.poll_reconcile_s,
            max_pages=s.poll_max_pages,
            spend=spend,
        )
        try:
            poller.poll(runtime.portal_client(portal), wanted)
            polled += 1
        except (B24Error, PortalUnavailable, StaleWrite) as exc:
            failed += 1
            logger.warning(
                "poll round failed",
                extra={"action": "poll", "member_id": member_id, "reason": type(exc).__name__},
            )
    return {"polled": polled, "failed": failed}


def handle_poll_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    deadline = None
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        deadline = time.monotonic() + max(0.0, context.get_remaining_time_in_millis() / 1000 - 10)
    return run_round(deadline)
