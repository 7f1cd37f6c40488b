"""TokenRefreshFunction: the keep-alive sweep, census and manual refresh, wired from settings."""

from __future__ import annotations

import time
from typing import Any

from b24core.entry import wiring as runtime
from b24core.tokens.outcomes import RefreshReason
from b24core.tokens.sweep import Sweep, census, emit_census


def handle_sweep_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """TokenRefreshFunction: ``{"action": "sweep" | "refresh" | "census" | "smoke", ...}``."""
    from b24core.aws.settings import get_settings

    settings = get_settings()
    store = runtime.portal_store()
    keeper = runtime.token_keeper()
    action = str(event.get("action") or "sweep")
    if action == "refresh":
        member_id = event.get("member_id")
        if not isinstance(member_id, str) or not member_id:
            return {"error": "member_id_required"}
        portal = store.get(member_id)
        if portal is None:
            return {"error": "unknown_portal", "member_id": member_id}
        result = keeper.attempt(portal, RefreshReason.MANUAL)
        return result.summary()
    if action == "census":
        report = census(store, settings.tokens, int(time.time()))
        emit_census(report)
        return report
    if action == "smoke":  # b24app doctor --portal: one REST call with the stored token, no refresh
        from b24core.tokens.smoke import smoke_test

        member_id = event.get("member_id")
        if not isinstance(member_id, str) or not member_id:
            return {"error": "member_id_required"}
        return smoke_test(store.get(member_id), int(time.time()))
    if action == "due":
        return Sweep(store, keeper, runtime.lease_store(), settings.tokens).due_count()
    if action != "sweep":
        return {"error": "unknown_action", "action": action}
    remaining = context.get_remaining_time_in_millis if context is not None else None
    max_portals = event.get("max_portals")
    sweep = Sweep(store, keeper, runtime.lease_store(), settings.tokens)
    swept = sweep.run(remaining, int(max_portals) if isinstance(max_portals, int) else None)
    return swept.as_dict()
