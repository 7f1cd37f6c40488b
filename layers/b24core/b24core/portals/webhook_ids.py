"""The id of a portal first met through an incoming webhook (webhooks never learn the member_id).

Kept apart from ``webhooks`` so the events intake can compute it without importing an HTTP client.
"""

from __future__ import annotations

import hashlib


def webhook_member_id(base: str) -> str:
    """Stable for the portal's REST base (``https://domain/rest/``), whatever the webhook's code."""
    return "wh-" + hashlib.sha256(base.rstrip("/").lower().encode()).hexdigest()[:29]
