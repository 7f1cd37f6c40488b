"""HTTP orchestration of the install function: install frame / ONAPPINSTALL, and the health check."""

from __future__ import annotations

import json
from typing import Any

from b24core import runtime
from b24core.apigw import HttpError, Request, error_response, html_response, json_response, parse_event
from b24core.install import InstallService, claim_from_request
from b24core.logs import logger
from b24core.pages import install_page
from b24core.portals.model import Portal
from b24core.protocol.forms import FormError, FormLimits, parse_form
from b24core.settings import get_settings

FORM_TYPES = ("application/x-www-form-urlencoded", "")


def read_form(req: Request, max_bytes: int) -> dict[str, Any]:
    if req.content_type not in FORM_TYPES:
        raise HttpError(415, "unsupported_media_type", "expected application/x-www-form-urlencoded")
    try:
        return parse_form(req.body, FormLimits(max_bytes=max_bytes))
    except FormError as exc:
        raise HttpError(400, "bad_form", str(exc)) from None


def handle_install(event: dict[str, Any]) -> dict[str, Any]:
    settings = get_settings()
    try:
        req = parse_event(event, settings.max_body_bytes)
        if req.method == "GET" and req.path.rstrip("/").endswith("/health"):
            return health()
        if req.method != "POST":
            raise HttpError(405, "method_not_allowed", "use POST")
        form = read_form(req, settings.max_body_bytes)
        claim = claim_from_request(req.query, form)
        service = InstallService(
            runtime.portal_store(),
            runtime.auth_server(),
            settings.client_id,
            settings.allow_insecure_endpoints,
        )
        portal = service.install(claim)
    except HttpError as err:
        return error_response(err)
    report = run_capability_check(portal, runtime.events_url(settings, req.host))
    if claim.path == "ui":
        page, csp = install_page(report, claim.language or portal.language, portal.domain)
        return html_response(200, page, csp)
    return json_response(
        200,
        {"installed": True, "member_id": portal.member_id, "domain": portal.domain, "capabilities": report},
    )


def run_capability_check(portal: Portal, events_url: str) -> dict[str, Any] | None:
    """Run the check synchronously within a time budget; on failure the schedule re-checks later."""
    settings = get_settings()
    if not settings.capability_check_function:
        return None
    try:
        resp = runtime.boto_client("lambda").invoke(
            FunctionName=settings.capability_check_function,
            InvocationType="RequestResponse",
            Payload=json.dumps({"action": "check", "member_id": portal.member_id, "events_url": events_url}),
        )
        if resp.get("FunctionError"):
            raise RuntimeError("capability check failed")
        result = json.loads(resp["Payload"].read() or b"null")
        return result if isinstance(result, dict) else None
    except Exception as exc:  # the install stands; the check is retried by its schedule
        logger.warning(
            "capability check not completed",
            extra={
                "action": "install",
                "outcome": "deferred",
                "member_id": portal.member_id,
                "reason": type(exc).__name__,
            },
        )
        return None


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
