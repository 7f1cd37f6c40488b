"""The keep-alive sweep: refresh only portals whose refresh token is getting old (GSI by due time)."""

from __future__ import annotations

import time
from typing import Any

from b24core import runtime
from b24core.logs import logger
from b24core.protocol.errors import B24Error
from b24core.tokens import PortalUnavailable

_SAFETY_MS = 10_000


def handle_sweep_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    store = runtime.portal_store()
    keeper = runtime.token_keeper()
    refreshed = failed = 0
    due = store.due_for_refresh(int(time.time()))
    for portal in due:
        if context is not None and context.get_remaining_time_in_millis() < _SAFETY_MS:
            break  # the next scheduled run resumes: the index still lists what is left
        try:
            keeper.refresh(portal)
            refreshed += 1
        except (B24Error, PortalUnavailable) as exc:
            failed += 1
            logger.warning(
                "keep-alive refresh failed",
                extra={
                    "action": "sweep",
                    "outcome": "failed",
                    "member_id": portal.member_id,
                    "reason": type(exc).__name__,
                },
            )
    return {"due": len(due), "refreshed": refreshed, "failed": failed}
