"""POST /connect: the small page where a box's admin connects an incoming webhook (docs/isolated-boxes.md).

Two steps, both POST:

1. the app opened in the portal (its frame POSTs ``AUTH_ID``, ``member_id``, ``DOMAIN`` like the
   install frame). The token is checked at the authorization server — which we reach even when the
   box does not — and must be this app's, for this installed portal. The answer is a form with a
   signed, short-lived ``state`` naming that portal (no token in it);
2. the form: ``state`` + the incoming webhook URL (+ the outgoing webhook's token). The webhook is
   verified and stored by ``b24core.trust.webhooks.connect`` for exactly that portal; a refusal stores
   nothing. The page never shows the webhook's code or the outgoing token back.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
import time
from logging import WARNING
from typing import Any

from b24core.aws import metrics
from b24core.aws.apigw import HttpError, Request, error_response, html_response
from b24core.aws.logs import log_event, remember_secret
from b24core.aws.secrets import ClientSecret
from b24core.aws.settings import Settings
from b24core.bitrix.errors import AuthError, B24Error
from b24core.bitrix.webhook import WebhookRefused
from b24core.capabilities.manifest import load_manifest
from b24core.delivery.audit_store import schedule_audit
from b24core.delivery.modes import DeliveryMode
from b24core.delivery.store import webhook_connected
from b24core.entry import wiring as runtime
from b24core.entry.pages import content_security_policy
from b24core.portals.sealing import token_matches
from b24core.trust.webhooks import WebhookNotAdmin, connect

STATE_TTL_S = 900
_STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:24px;max-width:720px;color:#222}"
    "input{width:100%;padding:6px;margin:4px 0 12px;box-sizing:border-box}"
    ".ok{color:#2e7d32}.refused{color:#c62828}"
)


def _key(settings: Settings) -> bytes:
    return hashlib.sha256(b"b24-connect-state|" + ClientSecret(settings)().encode()).digest()


def sign_state(member_id: str, settings: Settings, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + STATE_TTL_S)
    body = f"{member_id}|{expires}"
    mac = hmac.new(_key(settings), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}|{mac}"


def read_state(state: str, settings: Settings, now: float | None = None) -> str:
    member_id, _, rest = state.partition("|")
    expires, _, mac = rest.partition("|")
    good = hmac.new(_key(settings), f"{member_id}|{expires}".encode(), hashlib.sha256).hexdigest()
    if not member_id or not hmac.compare_digest(mac.encode(), good.encode()):
        raise HttpError(403, "bad_state", "this form was not issued by the app; open the app again")
    if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
        raise HttpError(403, "state_expired", "this form has expired; open the app again")
    return member_id


def _page(title: str, body: str, portal_url: str = "", status: int = 200) -> dict[str, Any]:
    nonce = secrets.token_urlsafe(16)
    page = (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style nonce='{nonce}'>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    # The one form posts back to this same address.
    csp = content_security_policy(nonce, portal_url).replace("form-action 'none'", "form-action 'self'")
    return html_response(status, page, csp)


def _form(state: str, domain: str, message: str = "") -> str:
    e = html.escape
    note = f"<p id='result' class='refused'>{e(message)}</p>" if message else ""
    return (
        f"{note}<p>Portal <b id='domain'>{e(domain)}</b> cannot use the app's OAuth tokens (see "
        "docs/isolated-boxes.md). Create an incoming webhook in <i>Developer resources → Other → "
        "Incoming webhook</i> with the app's permissions, and paste its URL here.</p>"
        "<form id='connect' method='post'>"
        f"<input type='hidden' name='state' value='{e(state)}'>"
        "<label>Incoming webhook URL<input name='incoming' id='incoming' autocomplete='off'></label>"
        "<label>Outgoing webhook's application token (optional)"
        "<input name='outgoing_token' id='outgoing_token' autocomplete='off'></label>"
        "<button id='submit' type='submit'>Connect</button></form>"
    )


def handle_connect(req: Request, form: dict[str, Any], settings: Settings) -> dict[str, Any]:
    try:
        if isinstance(form.get("state"), str) and form["state"]:
            return _connect(form, settings)
        return _open(req, form, settings)
    except HttpError as err:
        return error_response(err)


def _open(req: Request, form: dict[str, Any], settings: Settings) -> dict[str, Any]:
    token = str(form.get("AUTH_ID") or "")
    member_id = str(form.get("member_id") or "")
    app_token = str(form.get("APPLICATION_TOKEN") or "")
    if not token or not member_id or not app_token:
        raise HttpError(400, "missing_fields", "open this page from the app inside the portal")
    try:
        info = runtime.auth_server().app_info(token)
    except AuthError:
        raise HttpError(
            401, "token_rejected", "the authorization server does not accept this token"
        ) from None
    except B24Error:
        raise HttpError(
            503, "auth_server_unavailable", "the authorization server could not be reached"
        ) from None
    portal = runtime.portal_store().get(member_id)
    if info.client_id != settings.client_id or info.install.member_id != member_id or portal is None:
        raise HttpError(403, "claim_mismatch", "this token is not the app's on an installed portal")
    remember_secret(token)
    # The form only names the portal; the webhook pasted into it must be an administrator's (webhooks.py).
    if not token_matches(portal.application_token, app_token):
        raise HttpError(403, "application_token_mismatch", "application_token does not match")
    return _page("Connect an incoming webhook", _form(sign_state(member_id, settings), portal.domain))


def _connect(form: dict[str, Any], settings: Settings) -> dict[str, Any]:
    state = str(form["state"])
    member_id = read_state(state, settings)
    portal = runtime.portal_store().get(member_id)
    if portal is None:
        raise HttpError(404, "unknown_portal", "the portal is no longer installed")
    outgoing = str(form.get("outgoing_token") or "").strip()
    try:
        done = connect(
            str(form.get("incoming") or ""),
            portals=runtime.portal_store(),
            webhooks=runtime.webhook_store(),
            required_scopes=load_manifest().required_scopes(),
            member_id=member_id,
            outgoing_token=outgoing,
            local=settings.local or settings.allow_insecure_endpoints,
            timeout_s=settings.http_timeout_s,
        )
    except WebhookRefused as exc:
        status = 200
        if isinstance(exc, WebhookNotAdmin):  # a refused change of trust: logged, counted, 403
            status = 403
            metrics.emit("TrustChangesRefused", reason="not_admin")
            log_event(
                WARNING, "webhook connection refused", "connect", member_id, "refused", reason="not_admin"
            )
        return _page(
            "Connect an incoming webhook",
            _form(state, portal.domain, f"Refused: {exc}. Nothing was stored."),
            status=status,
        )
    now = int(time.time())
    route = webhook_connected(
        runtime.delivery_store(), done.portal.member_id, bool(done.connection.outgoing_token), now
    )
    schedule_audit(runtime.audit_store(), done.portal.member_id, now)  # the audit starts at once
    view = done.view()
    events_by = "outgoing webhook" if route.mode == DeliveryMode.WEBHOOK else "change polling"
    e = html.escape
    body = (
        f"<p id='result' class='ok'>Connected: the app now reaches <b>{e(str(view['domain']))}</b> through "
        f"the incoming webhook {e(str(view['incoming_webhook']))}.</p>"
        f"<p id='events_by'>Changes come by: {e(events_by)}.</p>"
    )
    return _page("Webhook connected", body)
