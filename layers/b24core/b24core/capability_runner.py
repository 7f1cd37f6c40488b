"""Entry of the capability check: one portal on demand/at install, or the scheduled re-check."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from b24core import runtime
from b24core.capabilities import check_portal
from b24core.logs import logger
from b24core.manifest import load_manifest
from b24core.portals.states import PortalState
from b24core.portals.store import StaleWrite
from b24core.protocol.errors import B24Error
from b24core.settings import get_settings
from b24core.tokens import PortalUnavailable


def check_one(member_id: str, events_url: str) -> dict[str, Any]:
    store = runtime.portal_store()
    portal = store.get(member_id)
    if portal is None or portal.state != PortalState.ACTIVE:
        return {"error": "portal_not_active", "member_id": member_id}
    client = runtime.portal_client(portal)
    try:
        report = check_portal(client, load_manifest(), events_url)
    except (B24Error, PortalUnavailable) as exc:
        logger.warning(
            "capability check failed",
            extra={
                "action": "capability_check",
                "outcome": "error",
                "member_id": member_id,
                "reason": type(exc).__name__,
            },
        )
        return {"error": "check_failed", "member_id": member_id, "reason": type(exc).__name__}
    report["events_url"] = events_url
    for _ in range(5):
        current = store.get(member_id) or client.portal
        try:
            store.save(replace(current, capabilities=report))
            break
        except StaleWrite:
            continue
    return report


def handle_capability_event(event: dict[str, Any]) -> dict[str, Any]:
    action = event.get("action")
    if action == "check" and isinstance(event.get("member_id"), str):
        url = event.get("events_url") or runtime.events_url(get_settings())
        return check_one(event["member_id"], str(url))
    if action == "recheck_due":
        rechecked = []
        for portal in runtime.portal_store().list_all():
            features = portal.capabilities.get("features") or {}
            lacking = not features or any(f.get("available") is not True for f in features.values())
            if portal.state == PortalState.ACTIVE and lacking:
                url = portal.capabilities.get("events_url") or runtime.events_url(get_settings())
                check_one(portal.member_id, str(url))
                rechecked.append(portal.member_id)
        return {"rechecked": len(rechecked)}
    return {"error": "unknown_action"}
