"""``POST /app``: the app's pages, opened by any user of an installed portal.

Bitrix24 opens the app's own page (placement DEFAULT) and every placement the app bound (a CRM card
tab, a menu item) by posting the user's frame to the handler URL. The user is identified at the
authorization server and asked about at their portal (``InstallService.visit``), nothing is stored,
and the page gets a signed user session (b24core.trust.session), never the portal's tokens. The
author's page function (``@app.page``) runs server-side with the portal's context: its REST client,
its app storage and the user.
"""

from __future__ import annotations

import json
from logging import ERROR, INFO
from typing import Any

from b24core.aws.apigw import HttpError, error_response, html_response, json_response
from b24core.aws.logs import log_event
from b24core.bitrix.inbound import claim_from_request
from b24core.capabilities.report import has_feature
from b24core.entry import wiring as runtime
from b24core.entry.frames import install_service, issue_session, portal_url, verified_session
from b24core.entry.pages import app_page, author_page
from b24core.portals.states import PortalState
from b24core.worker.handlers import Context, PageUser

MAX_OPTIONS = 8192
MAX_ACTION_BYTES = 65536


def placement_options(form: dict[str, Any]) -> dict[str, Any]:
    """PLACEMENT_OPTIONS, a JSON object in a form field; anything else is no options."""
    raw = form.get("PLACEMENT_OPTIONS")
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw or len(raw) > MAX_OPTIONS:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def handle_app_page(req: Any, form: dict[str, Any]) -> dict[str, Any]:
    try:
        claim = claim_from_request(req.query, form)
        opened = install_service().visit(claim)
        placement = str(form.get("PLACEMENT") or "DEFAULT").upper()
        app = runtime.the_app()
        handler = app.pages.get(placement)
        token, session = issue_session(opened, claim, form)
        url = portal_url(opened.portal)
        if handler is None:
            if placement != "DEFAULT":
                raise HttpError(404, "no_page", f"the app shows no page in {placement}")
            page, csp = app_page(token, session, url)
            return html_response(200, page, csp)
        feature = app.page_feature(placement)
        if feature and not has_feature(opened.portal.capabilities, feature):
            raise HttpError(409, "feature_missing", f"the portal lacks what the {feature} feature needs")
    except HttpError as err:
        return error_response(err)
    portal = opened.portal
    ctx = Context(
        portal=portal,
        client=runtime.portal_client(portal),
        storage_factory=runtime.app_storage,
        user=PageUser(
            user_id=session.user_id,
            admin=session.admin,
            placement=placement,
            options=placement_options(form),
            language=session.language,
        ),
    )
    try:
        result = handler(ctx)
    except Exception as exc:  # the author's code failed: our error, said without its details
        log_event(ERROR, "page failed", "page", portal.member_id, error=exc, placement=placement)
        return error_response(HttpError(500, "page_failed", "the page could not be shown"))
    document, csp = author_page(result.title, result.body, result.script, token, session, url)
    log_event(INFO, "page shown", "page", portal.member_id, placement=placement, admin=session.admin)
    return html_response(200, document, csp)


def _action_body(req: Any) -> tuple[str, dict[str, Any]]:
    if req.content_type != "application/json":
        raise HttpError(415, "unsupported_media_type", "expected application/json")
    if len(req.body) > MAX_ACTION_BYTES:
        raise HttpError(413, "too_large", f"an action's body is at most {MAX_ACTION_BYTES} bytes")
    try:
        body = json.loads(req.body or b"{}")
    except ValueError:
        raise HttpError(400, "bad_json", "the body is not JSON") from None
    name, data = (body.get("action"), body.get("data", {})) if isinstance(body, dict) else (None, None)
    if not isinstance(name, str) or not isinstance(data, dict):
        raise HttpError(400, "bad_request", 'expected {"action": NAME, "data": {...}}')
    return name, data


def handle_app_action(req: Any) -> dict[str, Any]:
    """``POST app/action``: a page calls the app's own API (``@app.action``) with its user session."""
    try:
        session = verified_session(req)
        name, data = _action_body(req)
        action = runtime.the_app().actions.get(name)
        if action is None:
            raise HttpError(404, "no_action", f"the app has no action {name!r}")
        if action.admin_only and not session.admin:
            raise HttpError(403, "admin_required", "only a portal administrator may do this")
        portal = runtime.portal_store().get(session.member_id)
        if portal is None or portal.state != PortalState.ACTIVE:
            raise HttpError(409, "not_installed", "the app is not installed on this portal")
    except HttpError as err:
        return error_response(err)
    options = placement_options({"PLACEMENT_OPTIONS": session.placement_options})
    ctx = Context(
        portal=portal,
        client=runtime.portal_client(portal),
        storage_factory=runtime.app_storage,
        user=PageUser(session.user_id, session.admin, session.placement, options, session.language),
    )
    try:
        result = action.run(ctx, data)
    except ValueError as exc:  # the author refuses what the page sent: a client's mistake
        return error_response(HttpError(400, "bad_request", str(exc)[:200]))
    except Exception as exc:
        log_event(ERROR, "action failed", name, portal.member_id, error=exc)
        return error_response(HttpError(500, "action_failed", "the action failed"))
    return json_response(200, result if isinstance(result, dict) else {"result": result})
