"""ChangePollFunction: the change audit's schedule (b24core.delivery.audit_round) — every portal whose
audit is due, OAuth or webhook alike, within the Lambda's time and each portal's REST budget. On a
polled route the audit is the delivery itself."""

from __future__ import annotations

import time
from typing import Any


def run_round(deadline: float | None = None) -> dict[str, Any]:
    from b24core.entry.offline_pull import build_runner

    audits = build_runner().audits
    assert audits is not None
    return audits.due(deadline)


def handle_poll_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    deadline = None
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        deadline = time.monotonic() + max(0.0, context.get_remaining_time_in_millis() / 1000 - 10)
    if isinstance(event, dict) and event.get("action") == "audit" and isinstance(event.get("member_id"), str):
        from b24core.entry.offline_pull import build_runner

        audits = build_runner().audits
        assert audits is not None
        return audits.one(event["member_id"][:64], deadline)
    return run_round(deadline)
