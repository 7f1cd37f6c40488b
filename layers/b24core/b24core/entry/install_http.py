"""HTTP orchestration of the install function: install frame / ONAPPINSTALL, and the health check;
and how the other functions start a capability check."""

from __future__ import annotations

from typing import Any

from b24core.aws.apigw import HttpError, Request, error_response, html_response, json_response, parse_event
from b24core.aws.settings import get_settings
from b24core.bitrix.inbound import InstallClaim, claim_from_request, read_form
from b24core.entry import wiring as runtime
from b24core.entry.frames import (
    install_service,
    issue_session,
    portal_url,
    run_capability_check,
    verified_session,
)
from b24core.entry.pages import app_page, decide, install_page
from b24core.trust.install import Opened


def handle_install(event: dict[str, Any]) -> dict[str, Any]:
    if "action" in event:  # an invoke from the events function, not an HTTP request
        from b24core.entry.lifecycle import on_handover

        return on_handover(event)
    settings = get_settings()
    try:
        req = parse_event(event, settings.max_body_bytes)
        route = req.path.rstrip("/")
        if req.method == "GET" and route.endswith("/health"):
            return health()
        if req.method == "GET" and route.endswith("/session"):
            return session_info(req)
        if req.method != "POST":
            raise HttpError(405, "method_not_allowed", "use POST")
        if route.endswith("/app/action"):
            from b24core.entry.app_pages import handle_app_action

            return handle_app_action(req)
        form = read_form(req, settings.max_body_bytes)
        if route.endswith("/app"):
            from b24core.entry.app_pages import handle_app_page

            return handle_app_page(req, form)
        if route.endswith("/connect"):
            from b24core.entry.connect_page import handle_connect  # rare: off the install path's imports

            return handle_connect(req, form, settings)
        claim = claim_from_request(req.query, form)
        service = install_service()
        if claim.path != "ui":
            portal = service.install(claim)
        else:
            opened = service.open(claim)
            if not opened.admin and opened.confirmed:  # an ordinary user: a session, nothing stored
                return user_page(opened, claim, form)
            portal = opened.portal
    except HttpError as err:
        return error_response(err)
    events_url = runtime.events_url(settings, req.host)
    report = run_capability_check(portal, events_url, "install")
    if claim.path == "ui":
        page, csp = install_page(
            report,
            claim.language or portal.language,
            portal.domain,
            portal_url=portal_url(portal),
            events_url=events_url,
        )
        return html_response(200, page, csp)
    outcome = decide(report)
    return json_response(
        200,
        {
            "installed": True,
            "member_id": portal.member_id,
            "domain": portal.domain,
            "install_state": outcome.state,
            "capabilities": report,
        },
    )


def user_page(opened: Opened, claim: InstallClaim, form: dict[str, Any]) -> dict[str, Any]:
    """The app as an ordinary user sees it: a signed session instead of any token."""
    token, session = issue_session(opened, claim, form)
    page, csp = app_page(token, session, portal_url(opened.portal))
    return html_response(200, page, csp)


def session_info(req: Request) -> dict[str, Any]:
    """``GET /session`` with ``Authorization: Bearer SESSION``: who the page's user is."""
    session = verified_session(req)
    return json_response(
        200,
        {
            "member_id": session.member_id,
            "domain": session.domain,
            "user_id": session.user_id,
            "admin": session.admin,
            "placement": session.placement,
            "placement_options": session.placement_options,
            "expires_at": session.expires_at,
        },
    )


def health() -> dict[str, Any]:
    settings = get_settings()
    checks: dict[str, str] = {}
    try:
        runtime.portal_store().get("__health__")
        checks["table"] = "ok"
    except Exception as exc:
        checks["table"] = type(exc).__name__
    try:
        runtime.boto_client("sqs").get_queue_attributes(
            QueueUrl=settings.events_queue_url, AttributeNames=["QueueArn"]
        )
        checks["queue"] = "ok"
    except Exception as exc:
        checks["queue"] = type(exc).__name__
    ok = all(v == "ok" for v in checks.values())
    return json_response(200 if ok else 503, {"status": "ok" if ok else "degraded", "checks": checks})
