"""The app's own lifecycle events, handled at /events before the ordinary intake.

* ONAPPUNINSTALL carries no usable token: the stored application_token is its only proof (checked by
  the intake before this runs). The portal is marked uninstalled, its tokens erased, and with
  data[CLEAN]=1 every item the app keeps for it (history, schedule, the app's data) is deleted. The
  record itself stays, so a later reinstall is recognised.
* ONAPPUPDATE carries a NEW application_token, so it cannot prove itself with the stored one. Its
  access token is checked at the authorization server (our client_id, this portal) before the new
  application_token is kept; then the portal is checked again and the events re-bound, since the
  platform drops an app's bindings on update.
"""

from __future__ import annotations

from typing import Any

from b24core import runtime
from b24core.apigw import json_response
from b24core.logs import logger
from b24core.portals.model import Portal


def _data(form: dict[str, Any]) -> dict[str, Any]:
    data = form.get("data")
    return data if isinstance(data, dict) else {}


def handle_uninstall(portal: Portal, form: dict[str, Any]) -> None:
    from b24core.uninstall import mark_uninstalled

    clean = str(_data(form).get("CLEAN", "0")) == "1"
    saved, purged = mark_uninstalled(
        runtime.portal_store(),
        portal.member_id,
        clean=clean,
        reason="uninstalled",
        schedule=runtime.capability_store(),
        fallback=portal,
    )
    if saved is None:
        return
    logger.info(
        "portal uninstalled",
        extra={
            "action": "uninstall",
            "outcome": "ok",
            "member_id": portal.member_id,
            "clean": clean,
            "items_deleted": purged,
        },
    )


def handle_update(form: dict[str, Any], request_host: str) -> dict[str, Any]:
    """ONAPPUPDATE: verify at the authorization server, keep the new tokens, re-check and re-bind."""
    from b24core.install import InstallService, claim_from_event
    from b24core.settings import get_settings
    from b24core.web import start_capability_check

    settings = get_settings()
    claim = claim_from_event(form, path="update")
    service = InstallService(
        runtime.portal_store(), runtime.auth_server(), settings.client_id, settings.allow_insecure_endpoints
    )
    version = str(_data(form).get("VERSION") or "")
    portal = service.update(claim, version)
    started = start_capability_check(portal.member_id, runtime.events_url(settings, request_host), "update")
    return json_response(200, {"status": "updated", "version": portal.app_version, "recheck": started})
