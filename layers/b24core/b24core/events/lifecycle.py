"""ONAPPUNINSTALL: the stored application_token is its only proof (already checked by intake)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from b24core import runtime
from b24core.logs import logger
from b24core.portals.model import Portal
from b24core.portals.states import PortalState, TokenState
from b24core.portals.store import StaleWrite


def handle_uninstall(portal: Portal, form: dict[str, Any]) -> None:
    store = runtime.portal_store()
    data = form.get("data") if isinstance(form.get("data"), dict) else {}
    clean = str((data or {}).get("CLEAN", "0")) == "1"
    for _ in range(5):
        current = store.get(portal.member_id) or portal
        if current.state == PortalState.DELETED:
            return
        updated = replace(
            current.with_state(PortalState.DELETED).with_token_state(TokenState.UNINSTALLED),
            access_token="",
            refresh_token="",
            application_token="",
        )
        try:
            store.save(updated)
        except StaleWrite:
            continue
        logger.info(
            "portal uninstalled",
            extra={"action": "uninstall", "outcome": "ok", "member_id": portal.member_id, "clean": clean},
        )
        return
