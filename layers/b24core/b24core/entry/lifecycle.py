"""The app's own lifecycle events: received at /events, handled in the install function (which may
write portal records; b24core.trust.handover).

* ONAPPUNINSTALL carries no usable token, and its application_token reaches every user's browser, so
  it proves only that it came through Bitrix24 or a user. It acts once the portal confirms the app is
  gone (b24core.tokens.keeper.TokenKeeper.confirm_removed): the portal is marked uninstalled, its tokens
  erased, and with data[CLEAN]=1 every item the app keeps for it is deleted. The record itself stays,
  so a later reinstall is recognised.
* ONAPPUPDATE carries a NEW application_token, so it cannot prove itself with the stored one. Its
  access token is checked at the authorization server (our client_id, this portal) and must be an
  administrator's, and the portal must report a new version, before the new application_token is
  kept; then the portal is checked again and the events re-bound, since the platform drops an app's
  bindings on update.
"""

from __future__ import annotations

from logging import ERROR, INFO, WARNING
from typing import Any

from b24core.aws import metrics
from b24core.aws.apigw import HttpError, json_response
from b24core.aws.logs import log_event
from b24core.entry import wiring as runtime
from b24core.entry.frames import start_capability_check
from b24core.portals.sealing import token_matches
from b24core.trust.handover import ADOPT, LIFECYCLE


def _data(form: dict[str, Any]) -> dict[str, Any]:
    data = form.get("data")
    return data if isinstance(data, dict) else {}


def handle(form: dict[str, Any], request_host: str) -> dict[str, Any]:
    """A lifecycle event the events function verified and handed over (b24core.trust.handover)."""
    name = str(form.get("event") or "").upper()
    if name == "ONAPPUPDATE":
        return handle_update(form, request_host)
    if name == "ONAPPUNINSTALL":
        return handle_uninstall(form)
    raise HttpError(400, "unexpected_event", "not a lifecycle event")


def handle_uninstall(form: dict[str, Any]) -> dict[str, Any]:
    """Act only once the portal confirms the app is gone: the application_token this event carries is
    known to every user's browser, so it alone must never erase a portal (least of all with CLEAN)."""
    from b24core.tokens.outcomes import Installation
    from b24core.trust.uninstall import mark_uninstalled

    raw = form.get("auth")
    auth: dict[str, Any] = raw if isinstance(raw, dict) else {}
    member_id = str(auth.get("member_id") or "")
    given = str(auth.get("application_token") or "")
    store = runtime.portal_store()
    portal = store.get(member_id) if member_id else None
    if portal is None or not portal.application_token or not token_matches(portal.application_token, given):
        _refuse("application_token_mismatch", member_id)
        raise HttpError(403, "application_token_mismatch", "application_token does not match")
    clean = str(_data(form).get("CLEAN", "0")) == "1"
    verdict = runtime.token_keeper().confirm_removed(portal)
    if verdict == Installation.PRESENT:
        _refuse("still_installed", member_id)
        raise HttpError(403, "still_installed", "the portal says the app is still installed")
    if verdict == Installation.UNKNOWN:
        _refuse("not_confirmed", member_id)
        raise HttpError(503, "uninstall_not_confirmed", "the uninstall could not be confirmed; try again")
    caps = runtime.capability_store()
    saved, purged = mark_uninstalled(
        store, member_id, clean=clean, reason="uninstalled", schedule=caps, fallback=portal
    )
    if saved is None and clean:  # confirming it (a refused refresh) already marked it uninstalled
        purged = caps.purge(member_id)
    log_event(INFO, "portal uninstalled", "uninstall", member_id, "ok", clean=clean, items_deleted=purged)
    run_uninstalled_hooks(saved or portal)
    return json_response(200, {"status": "uninstalled"})


def run_uninstalled_hooks(portal: Any) -> None:
    """``@app.uninstalled``: the portal's tokens are already gone (no REST), and with CLEAN its app
    data too; a hook that fails is logged, the uninstall stands."""
    from b24core.worker.handlers import Context

    app = runtime.the_app()
    for hook in app.hooks.uninstalled:
        try:
            hook(Context(portal=portal, client=None, storage_factory=runtime.app_storage))
        except Exception as exc:  # the author's hook
            metrics.emit("AppHooksFailed", hook="uninstalled")
            log_event(ERROR, "app hook failed", "hook", portal.member_id, error=exc, hook="uninstalled")


def _refuse(reason: str, member_id: str) -> None:
    metrics.emit("TrustChangesRefused", reason=reason)
    log_event(WARNING, "uninstall refused", "uninstall", member_id, "refused", reason=reason)


def handle_update(form: dict[str, Any], request_host: str) -> dict[str, Any]:
    """ONAPPUPDATE: verify at the authorization server, keep the new tokens, re-check and re-bind."""
    from b24core.aws.settings import get_settings
    from b24core.bitrix.inbound import claim_from_event
    from b24core.trust.install import InstallService

    settings = get_settings()
    claim = claim_from_event(form, path="update")
    service = InstallService(
        runtime.portal_store(), runtime.auth_server(), settings.client_id, settings.allow_insecure_endpoints
    )
    version = str(_data(form).get("VERSION") or "")
    portal = service.update(claim, version)
    started = start_capability_check(portal.member_id, runtime.events_url(settings, request_host), "update")
    return json_response(200, {"status": "updated", "version": portal.app_version, "recheck": started})


def on_handover(event: dict[str, Any]) -> dict[str, Any]:
    """Called in the install function with what the events function verified."""
    from b24core.aws.apigw import error_response

    form = event.get("form")
    if not isinstance(form, dict):
        return error_response(HttpError(400, "bad_request", "no form"))
    try:
        if event.get("action") == LIFECYCLE:
            return handle(form, str(event.get("host") or ""))
        if event.get("action") == ADOPT:
            from b24core.tokens.healing import adopt_from_event

            result = adopt_from_event(form, runtime.token_keeper())
            return json_response(200, {"adopted": bool(result and result.outcome == "adopted")})
    except HttpError as err:
        return error_response(err)
    return error_response(HttpError(400, "bad_request", "unknown action"))
