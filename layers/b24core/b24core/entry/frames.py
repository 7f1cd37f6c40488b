"""What the pages and the lifecycle share: the install service, user sessions, the portal's web address,
and starting a capability check from the install function."""

from __future__ import annotations

import json
import time
from functools import lru_cache
from logging import INFO, WARNING
from typing import Any

from b24core.aws.apigw import HttpError, Request
from b24core.aws.logs import log_event
from b24core.aws.settings import get_settings
from b24core.bitrix.inbound import InstallClaim
from b24core.entry import wiring as runtime
from b24core.portals.model import Portal
from b24core.trust.install import InstallService, Opened
from b24core.trust.session import UserSession


def install_service() -> InstallService:
    settings = get_settings()
    return InstallService(
        runtime.portal_store(),
        runtime.auth_server(),
        settings.client_id,
        settings.allow_insecure_endpoints,
    )


def _session_key() -> bytes:
    from b24core.aws.secrets import ClientSecret
    from b24core.trust.session import session_key

    return session_key(ClientSecret(get_settings())())


def issue_session(opened: Opened, claim: InstallClaim, form: dict[str, Any]) -> tuple[str, UserSession]:
    """A signed user session for whoever opened a frame: who they are, never a token."""
    from b24core.trust.session import issue

    placement = str(form.get("PLACEMENT") or "DEFAULT")
    options = form.get("PLACEMENT_OPTIONS")
    token, session = issue(
        _session_key(),
        member_id=opened.portal.member_id,
        domain=opened.portal.domain,
        user_id=opened.user_id,
        admin=opened.admin,
        placement=placement,
        placement_options=options if isinstance(options, str) else "",
        ttl_s=get_settings().session_ttl_s,
        language=claim.language or opened.portal.language,
    )
    log_event(INFO, "user session issued", "open", session.member_id, "session", placement=placement)
    return token, session


def verified_session(req: Request) -> UserSession:
    """The page's user session from ``Authorization: Bearer SESSION``, or 401."""
    from b24core.trust.session import SessionInvalid, verify

    header = req.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    try:
        return verify(_session_key(), token)
    except SessionInvalid as exc:
        raise HttpError(401, "session_invalid", str(exc)) from None


def portal_url(portal: Portal) -> str:
    """The portal's web address (its REST endpoint without /rest/)."""
    endpoint = portal.client_endpoint
    return endpoint[: -len("/rest/")] if endpoint.endswith("/rest/") else endpoint.rstrip("/")


@lru_cache(maxsize=4)
def _lambda_client(read_timeout_s: float) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2, read_timeout=read_timeout_s, retries={"max_attempts": 1, "mode": "standard"}
    )
    return boto3.client("lambda", region_name=get_settings().region, config=config)


def run_capability_check(portal: Portal, events_url: str, trigger: str) -> dict[str, Any] | None:
    """Run the check synchronously within the install's time budget. A re-check is put on the
    schedule first, so a check that fails or overruns is repeated soon whatever happens."""
    settings = get_settings()
    if not settings.capability_check_function:
        return None
    budget = settings.check_budget_s
    try:
        runtime.capability_store().schedule_recheck(
            portal.member_id, int(time.time()) + settings.recheck_soon_s
        )
        resp = _lambda_client(budget).invoke(
            FunctionName=settings.capability_check_function,
            InvocationType="RequestResponse",
            Payload=json.dumps(
                {
                    "action": "check",
                    "member_id": portal.member_id,
                    "events_url": events_url,
                    "trigger": trigger,
                    "budget_s": max(1.0, budget - 2),
                }
            ),
        )
        if resp.get("FunctionError"):
            raise RuntimeError("capability check failed")
        result = json.loads(resp["Payload"].read() or b"null")
        if not isinstance(result, dict) or "error" in result:
            return None
        return result
    except Exception as exc:  # the install stands; the check is repeated by its schedule
        log_event(WARNING, "capability check not completed", trigger, portal.member_id, "deferred", error=exc)
        return None


def start_capability_check(member_id: str, events_url: str, trigger: str) -> bool:
    """Ask for a check without waiting (after ONAPPUPDATE); the schedule is the safety net."""
    settings = get_settings()
    if not settings.capability_check_function:
        return False
    try:
        runtime.capability_store().schedule_recheck(member_id, int(time.time()) + settings.recheck_soon_s)
        runtime.boto_client("lambda").invoke(
            FunctionName=settings.capability_check_function,
            InvocationType="Event",
            Payload=json.dumps(
                {"action": "check", "member_id": member_id, "events_url": events_url, "trigger": trigger}
            ),
        )
        return True
    except Exception as exc:
        log_event(WARNING, "capability check not started", trigger, member_id, "deferred", error=exc)
        return False
