"""Incoming-webhook connection: the second auth mode beside OAuth, for boxes cut off from the cloud.

A box that cannot reach the authorization server cannot check the app's OAuth tokens, so every OAuth
REST call fails there. An incoming webhook (local-integrations/local-webhooks.md) is checked by the
portal itself: ``{client_endpoint}{user_id}/{code}/{method}``. The admin creates one with the scopes
the manifest needs and connects it here (``b24app portals connect-webhook --incoming URL``).

* ``parse_incoming`` (b24core.bitrix.webhook) refuses a URL that is not https, points at a
  private/loopback address, or is not shaped like an incoming webhook;
* ``connect`` verifies it with one harmless call (``scope``: the webhook's own scopes), refuses one that
  answers with an error, lacks a required scope, or belongs to another portal than the one named, then
  attaches it to the portal's record (same client endpoint) or creates one. Nothing is stored on refusal.
* The code is a secret like a token: remembered for redaction, never in a view, a log or an error.
* ``WebhookClient`` sends a webhook-connected portal's REST through the webhook (nothing to refresh).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx

from b24core.aws.logs import logger
from b24core.bitrix.errors import B24Error
from b24core.bitrix.webhook import WebhookRefused, parse_incoming, webhook_call
from b24core.portals.model import Portal
from b24core.portals.sealing import hash_token
from b24core.portals.states import PortalState
from b24core.portals.store import PortalStore
from b24core.portals.versioned import update
from b24core.portals.webhook_ids import webhook_member_id
from b24core.portals.webhook_store import AuthMode, WebhookConnection, WebhookStore


class WebhookNotAdmin(WebhookRefused):
    """The webhook's user is not an administrator: connecting it would change what the app trusts."""


# ------------------------------------------------------------------ connecting
def _same_endpoint(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


@dataclass(frozen=True)
class Connected:
    portal: Portal
    connection: WebhookConnection
    created: bool

    def view(self) -> dict[str, Any]:
        return {**self.portal.public_view(), **self.connection.public_view(), "created": self.created}


def connect(
    url: str,
    *,
    portals: PortalStore,
    webhooks: WebhookStore,
    required_scopes: tuple[str, ...],
    member_id: str | None = None,
    outgoing_token: str = "",
    local: bool = False,
    timeout_s: float = 10.0,
    http: httpx.Client | None = None,
    log: Callable[[str, dict[str, Any]], None] | None = None,
) -> Connected:
    """Verify and store an incoming webhook for a portal; ``WebhookRefused`` stores nothing."""
    hook = parse_incoming(url, local=local)
    existing: Portal | None = None
    if member_id:
        existing = portals.get(member_id)
        if existing is None:
            raise WebhookRefused(f"no portal with member_id {member_id}")
        if not _same_endpoint(existing.client_endpoint, hook.base):
            raise WebhookRefused(
                f"the webhook belongs to {hook.domain}, not to the portal being connected ({existing.domain})"
            )
    else:
        existing = next((p for p in portals.list_all() if _same_endpoint(p.client_endpoint, hook.base)), None)
    try:
        granted = webhook_call(hook, "scope", {}, timeout_s, http).result
    except B24Error as exc:
        code = exc.code or type(exc).__name__
        raise WebhookRefused(f"the portal refused the webhook's call ({code}): check the URL") from None
    scopes = tuple(str(s) for s in granted) if isinstance(granted, list) else ()
    lacking = [s for s in required_scopes if s not in scopes]
    if lacking:
        raise WebhookRefused(
            f"the webhook lacks the scope(s) {', '.join(lacking)} the app needs; edit the webhook and "
            "tick them"
        )
    # Connecting changes what the app trusts for the portal: only an administrator's webhook may.
    try:
        admin = webhook_call(hook, "user.admin", {}, timeout_s, http).result
    except B24Error as exc:
        raise WebhookRefused(f"the portal refused the webhook's user.admin call ({exc.code})") from None
    if admin is not True:
        raise WebhookNotAdmin(
            "the webhook's user is not an administrator of the portal; an admin must create it"
        )
    now = int(time.time())
    created = existing is None
    portal = existing or Portal(
        member_id=webhook_member_id(hook.base),
        domain=hook.domain,
        client_endpoint=hook.base,
        installed_at=now,
        install_path="webhook",
    )
    if portal.state == PortalState.NEW:
        portal = portals.save(portal.with_state(PortalState.ACTIVE))
    elif created:
        portal = portals.save(portal)
    if outgoing_token:
        portal = _set_webhook_token(portals, portal.member_id, outgoing_token)
    current = webhooks.get(portal.member_id)
    token = outgoing_token or (current.outgoing_token if current else "")
    conn = WebhookConnection(
        member_id=portal.member_id,
        base=hook.base,
        user_id=hook.user_id,
        code=hook.code,
        outgoing_token=token,
        scopes=scopes,
        connected_at=now,
        version=current.version if current else 0,
    )
    saved = webhooks.save(conn)
    (log or _log)(
        "webhook connected",
        {
            "member_id": portal.member_id,
            "domain": portal.domain,
            "auth_mode_from": str(AuthMode.WEBHOOK if current else AuthMode.OAUTH),
            "auth_mode_to": str(AuthMode.WEBHOOK),
            "new_record": created,
        },
    )
    return Connected(portal, saved, created)


def _log(message: str, fields: dict[str, Any]) -> None:
    logger.info(message, extra={"action": "webhook", **fields})


def _set_webhook_token(portals: PortalStore, member_id: str, token: str) -> Portal:
    """The outgoing webhook's token lives in the portal record, where event intake reads it."""

    def with_token(current: Portal | None) -> Portal | None:
        if current is None:
            raise WebhookRefused(f"portal {member_id} disappeared while connecting")
        if hash_token(current.webhook_token) == hash_token(token):
            return None
        return replace(current, webhook_token=token)

    saved = update(lambda: portals.get(member_id), portals.save, with_token, member_id)
    assert saved is not None
    return saved


def disconnect(
    member_id: str,
    webhooks: WebhookStore,
    portals: PortalStore | None = None,
    log: Callable[[str, dict[str, Any]], None] | None = None,
) -> bool:
    """Back to OAuth for this portal (an explicit, logged operation); outgoing-webhook events are then
    refused."""
    if webhooks.get(member_id) is None:
        return False
    if portals is not None and portals.get(member_id) is not None:
        _set_webhook_token(portals, member_id, "")
    webhooks.delete(member_id)
    (log or _log)(
        "webhook disconnected", {"member_id": member_id, "auth_mode_from": "webhook", "auth_mode_to": "oauth"}
    )
    return True
