"""A read-only test of one portal's stored tokens, for ``b24app doctor --portal`` on a fresh stack.

``b24app tokens refresh`` refuses a pair refreshed within the day, and a refresh changes what it tests.
This asks the portal ``app.info`` with the stored access token exactly once and never refreshes: the
answer proves the stored pair, the portal's address and the app's install on it are good. It runs in
TokenRefreshFunction, because only the functions may open tokens (the operator's IAM identity cannot).
The report carries no token, only outcomes.
"""

from __future__ import annotations

from typing import Any

from b24core.bitrix.errors import B24Error
from b24core.bitrix.rest import call_rest
from b24core.portals.model import Portal

METHOD = "app.info"


def smoke_test(portal: Portal | None, now: int, timeout_s: float = 10.0) -> dict[str, Any]:
    """``{"outcome": "ok" | "failed" | "skipped", "reason": ..., ...}`` for one portal."""
    if portal is None:
        return {"outcome": "failed", "reason": "unknown_portal"}
    if not portal.access_token:
        return {"outcome": "skipped", "reason": "no_access_token"}  # e.g. a box connected by webhook
    if portal.access_expires_at and portal.access_expires_at <= now:
        # Normal after an hour: the next call refreshes it. Testing it would only test the refresh.
        return {
            "outcome": "skipped",
            "reason": "access_token_expired",
            "expired_at": portal.access_expires_at,
        }
    try:
        answer = call_rest(portal.client_endpoint, METHOD, {}, portal.access_token, timeout_s=timeout_s)
    except B24Error as exc:
        return {"outcome": "failed", "method": METHOD, "reason": exc.code, "status": exc.status}
    result = answer.result if isinstance(answer.result, dict) else {}
    return {
        "outcome": "ok",
        "method": METHOD,
        "app_status": str(result.get("STATUS") or ""),
        "installed": bool(result.get("INSTALLED")),
        "payment_expired": result.get("PAYMENT_EXPIRED") == "Y",
    }
