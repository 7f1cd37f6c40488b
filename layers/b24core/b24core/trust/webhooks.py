"""Incoming-webhook connection: the second auth mode beside OAuth, for boxes cut off from the cloud.

A box that cannot reach the authorization server cannot check the app's OAuth tokens, so every OAuth
REST call fails there. An incoming webhook (local-integrations/local-webhooks.md) is checked by the
portal itself: ``{client_endpoint}{user_id}/{code}/{method}``. The admin creates one with the scopes
the manifest needs and connects it here (``b24app portals connect-webhook --incoming URL``).

* ``parse_incoming`` refuses a URL that is not https or points at a private/loopback address (both
  allowed in local mode only), or is not shaped like an incoming webhook;
* ``connect`` verifies it with one harmless call (``scope``: the webhook's own scopes), refuses one that
  answers with an error, lacks a required scope, or belongs to another portal than the one named, then
  attaches it to the portal's record (same client endpoint) or creates one. Nothing is stored on refusal.
* The code is a secret like a token: remembered for redaction, never in a view, a log or an error.
* ``WebhookClient`` sends a webhook-connected portal's REST through the webhook (nothing to refresh).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

import httpx
from pynamodb.exceptions import PutError

from b24core.aws.logs import logger, mask_known, remember_secret
from b24core.bitrix.errors import B24Error, PortalMoved
from b24core.bitrix.rest import RestAnswer, call_rest
from b24core.portals.model import Portal
from b24core.portals.sealing import PlainCodec, TokenCodec, hash_token
from b24core.portals.state_items import StateItem, state_model
from b24core.portals.states import PortalState
from b24core.portals.store import PortalStore, StaleWrite, portal_pk
from b24core.portals.webhook_ids import webhook_member_id

WEBHOOK_SK = "WEBHOOK"
#: gsi1 partition of the webhook-connected portals whose changes are polled (no outgoing webhook, or
#: the delivery watchdog found the event queue unreachable).
POLL_PARTITION = "WEBHOOK#poll"
#: gsi1 partition of those whose events come by outgoing webhook (the delivery watchdog watches them).
OUTGOING_PARTITION = "WEBHOOK#outgoing"
#: Methods only an application (OAuth) may call: a webhook-connected portal lacks them by design.
APP_ONLY_METHODS = frozenset(
    {
        "app.info",
        "events",
        "event.bind",
        "event.get",
        "event.unbind",
        "event.test",
        "event.offline.get",
        "event.offline.clear",
        "event.offline.error",
        "event.offline.list",
    }
)
_HOOK_PATH = re.compile(r"^(?P<prefix>.*/rest/)(?P<user>\d+)/(?P<code>[0-9A-Za-z]+)/?$")


class _MaskUrls(logging.Filter):
    """httpx logs every request's URL at INFO; a webhook's URL carries its code: mask known secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                mask_known(str(a)) if isinstance(a, str | httpx.URL) else a for a in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_MaskUrls())


class AuthMode(StrEnum):
    OAUTH = "oauth"
    WEBHOOK = "webhook"


class WebhookRefused(ValueError):
    """The webhook cannot be connected; the message says why (never the code). Nothing was stored."""


class WebhookNotAdmin(WebhookRefused):
    """The webhook's user is not an administrator: connecting it would change what the app trusts."""


@dataclass(frozen=True)
class IncomingWebhook:
    base: str  # the portal's client endpoint: scheme://host[:port][/prefix]/rest/
    user_id: int
    code: str = field(repr=False)

    @property
    def endpoint(self) -> str:
        return f"{self.base}{self.user_id}/{self.code}/"

    @property
    def domain(self) -> str:
        return httpx.URL(self.base).netloc.decode()

    def masked(self) -> str:
        return f"{self.base}{self.user_id}/***/"


def is_app_only(method: str) -> bool:
    return method.lower() in APP_ONLY_METHODS


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def _host_is_private(host: str) -> bool:
    try:
        return _private(host)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        raise WebhookRefused(f"the webhook's host {host!r} cannot be resolved") from None
    return any(_private(str(info[4][0])) for info in infos)


def parse_incoming(url: str, *, local: bool = False) -> IncomingWebhook:
    """The webhook's parts, or ``WebhookRefused`` for a URL we must not call."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError):
        raise WebhookRefused("the incoming webhook URL is not a URL") from None
    if parsed.scheme not in ("https", "http") or not parsed.host:
        raise WebhookRefused("the incoming webhook URL must start with https://")
    if parsed.scheme != "https" and not local:
        raise WebhookRefused("the incoming webhook URL must use https (http is allowed in local mode only)")
    if parsed.query or parsed.fragment:
        raise WebhookRefused("the incoming webhook URL must not carry a query or fragment")
    match = _HOOK_PATH.match(parsed.path)
    if match is None:
        raise WebhookRefused(
            "this is not an incoming webhook URL: expected https://PORTAL/rest/USER_ID/CODE/ "
            "(Developer resources → Other → Incoming webhook)"
        )
    remember_secret(match["code"])
    if not local and _host_is_private(parsed.host):
        raise WebhookRefused(
            f"the incoming webhook points at a private or loopback address ({parsed.host}); "
            "the bundle only calls public portal addresses"
        )
    base = str(parsed.copy_with(path=match["prefix"], query=None, fragment=None))
    return IncomingWebhook(base=base, user_id=int(match["user"]), code=match["code"])


def webhook_call(
    hook: IncomingWebhook,
    method: str,
    params: dict[str, Any] | None = None,
    timeout_s: float = 10.0,
    http: httpx.Client | None = None,
) -> RestAnswer:
    """One REST call authorized by the webhook's URL. A redirect's Location would echo the code: not kept."""
    try:
        return call_rest(hook.endpoint, method, dict(params or {}), "", timeout_s, http)
    except PortalMoved:
        raise B24Error(f"{method}: the webhook's portal answered with a redirect", code="REDIRECT") from None


# ------------------------------------------------------------------ storage
@dataclass(frozen=True)
class WebhookConnection:
    """One portal's webhook connection (pk=PORTAL#member_id, sk=WEBHOOK, beside its record)."""

    member_id: str
    base: str
    user_id: int
    code: str = field(repr=False)
    outgoing_token: str = field(default="", repr=False)
    scopes: tuple[str, ...] = ()
    connected_at: int = 0
    #: Set when the delivery watchdog switched an outgoing-webhook portal to change polling because its
    #: events stopped arriving (b24core.delivery.watchdog); 0 while events come by the outgoing webhook.
    polling_since: int = 0
    polling_reason: str = ""
    version: int = 0

    @property
    def polled(self) -> bool:
        """Without an outgoing webhook, or while its events do not arrive, changes come by polling."""
        return not self.outgoing_token or bool(self.polling_since)

    @property
    def events_by(self) -> str:
        return "change polling" if self.polled else "outgoing webhook"

    @property
    def watched(self) -> bool:
        """An outgoing webhook is set: the delivery watchdog checks that its events arrive."""
        return bool(self.outgoing_token)

    @property
    def incoming(self) -> IncomingWebhook:
        return IncomingWebhook(self.base, self.user_id, self.code)

    def public_view(self) -> dict[str, Any]:
        """For operators: never the code nor the outgoing token."""
        return {
            "auth_mode": str(AuthMode.WEBHOOK),
            "incoming_webhook": self.incoming.masked(),
            "webhook_user_id": self.user_id,
            "webhook_scopes": list(self.scopes),
            "has_outgoing_token": bool(self.outgoing_token),
            "events_by": self.events_by,
            "polling_since": self.polling_since,
            "polling_reason": self.polling_reason,
            "webhook_connected_at": self.connected_at,
        }


class WebhookStore(Protocol):
    def get(self, member_id: str) -> WebhookConnection | None: ...

    def save(self, conn: WebhookConnection) -> WebhookConnection: ...

    def delete(self, member_id: str) -> None: ...

    def polled_members(self, limit: int = 1000) -> list[str]: ...

    def watched(self, limit: int = 1000) -> list[WebhookConnection]:
        """Connections with an outgoing webhook (polled meanwhile or not), for the delivery watchdog."""
        ...


class InMemoryWebhookStore:
    def __init__(self) -> None:
        self._items: dict[str, WebhookConnection] = {}
        self._lock = threading.Lock()

    def get(self, member_id: str) -> WebhookConnection | None:
        with self._lock:
            return self._items.get(member_id)

    def save(self, conn: WebhookConnection) -> WebhookConnection:
        with self._lock:
            current = self._items.get(conn.member_id)
            if (current.version if current else 0) != conn.version:
                raise StaleWrite(conn.member_id)
            saved = replace(conn, version=conn.version + 1)
            self._items[conn.member_id] = saved
            return saved

    def delete(self, member_id: str) -> None:
        with self._lock:
            self._items.pop(member_id, None)

    def polled_members(self, limit: int = 1000) -> list[str]:
        with self._lock:
            return sorted(m for m, c in self._items.items() if c.polled)[:limit]

    def watched(self, limit: int = 1000) -> list[WebhookConnection]:
        with self._lock:
            return [c for _, c in sorted(self._items.items()) if c.watched][:limit]


class DynamoWebhookStore:
    """The code is sealed and the outgoing token hashed at this boundary (b24core.portals.sealing)."""

    def __init__(
        self, table_name: str, region: str, host: str | None = None, codec: TokenCodec | None = None
    ) -> None:
        self.model = state_model(table_name, region, host)
        self.codec: TokenCodec = codec or PlainCodec()

    def get(self, member_id: str) -> WebhookConnection | None:
        try:
            item = self.model.get(portal_pk(member_id), WEBHOOK_SK, consistent_read=True)
        except self.model.DoesNotExist:
            return None
        return _connection(item, self.codec)

    def save(self, conn: WebhookConnection) -> WebhookConnection:
        state = {
            "base": conn.base,
            "user_id": conn.user_id,
            "code": self.codec.seal(conn.member_id, "webhook_code", conn.code),
            "outgoing_token": hash_token(conn.outgoing_token),
            "scopes": list(conn.scopes),
            "connected_at": conn.connected_at,
            "polling_since": conn.polling_since,
            "polling_reason": conn.polling_reason,
        }
        item = self.model(
            portal_pk(conn.member_id),
            WEBHOOK_SK,
            member_id=conn.member_id,
            gsi1pk=POLL_PARTITION if conn.polled else OUTGOING_PARTITION,
            gsi1sk=conn.member_id,
        )
        item.state = json.dumps(state, sort_keys=True)
        if conn.version:
            item.version = conn.version
        try:
            item.save()
        except PutError as exc:
            if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
                raise StaleWrite(conn.member_id) from None
            raise
        return replace(conn, version=int(item.version or 0), outgoing_token=hash_token(conn.outgoing_token))

    def delete(self, member_id: str) -> None:
        try:
            self.model.get(portal_pk(member_id), WEBHOOK_SK).delete()
        except self.model.DoesNotExist:
            return

    def polled_members(self, limit: int = 1000) -> list[str]:
        """Through gsi1, never a scan (the schedule runs every minute)."""
        return [i.member_id for i in self.model.index.query(POLL_PARTITION, limit=limit)][:limit]

    def watched(self, limit: int = 1000) -> list[WebhookConnection]:
        """Both gsi1 partitions (the index projects the whole item): outgoing-webhook portals, and the
        polled ones among them that the watchdog switched to polling."""
        out: list[WebhookConnection] = []
        for partition in (OUTGOING_PARTITION, POLL_PARTITION):
            for item in self.model.index.query(partition, limit=limit):
                conn = _connection(item, self.codec)
                if conn.watched:
                    out.append(conn)
        return out[:limit]


def _connection(item: StateItem, codec: TokenCodec) -> WebhookConnection:
    raw = json.loads(item.state)
    conn = WebhookConnection(
        member_id=str(item.member_id),
        base=str(raw["base"]),
        user_id=int(raw["user_id"]),
        code=codec.open(str(item.member_id), "webhook_code", str(raw["code"])),
        outgoing_token=str(raw.get("outgoing_token") or ""),
        scopes=tuple(raw.get("scopes") or ()),
        connected_at=int(raw.get("connected_at") or 0),
        polling_since=int(raw.get("polling_since") or 0),
        polling_reason=str(raw.get("polling_reason") or ""),
        version=int(item.version or 0),
    )
    remember_secret(conn.code)
    remember_secret(conn.outgoing_token)
    return conn


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
    # A watchdog's switch to polling stands while the outgoing webhook stays the same one.
    keep_mode = (
        current is not None and bool(token) and hash_token(current.outgoing_token) == hash_token(token)
    )
    conn = WebhookConnection(
        member_id=portal.member_id,
        base=hook.base,
        user_id=hook.user_id,
        code=hook.code,
        outgoing_token=token,
        scopes=scopes,
        connected_at=now,
        polling_since=current.polling_since if current is not None and keep_mode else 0,
        polling_reason=current.polling_reason if current is not None and keep_mode else "",
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
    for _ in range(8):
        current = portals.get(member_id)
        if current is None:
            raise WebhookRefused(f"portal {member_id} disappeared while connecting")
        if hash_token(current.webhook_token) == hash_token(token):
            return current
        try:
            return portals.save(replace(current, webhook_token=token))
        except StaleWrite:
            continue
    raise StaleWrite(member_id)


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


def switch_events(
    member_id: str,
    webhooks: WebhookStore,
    *,
    polling: bool,
    reason: str,
    by: str,
    now: int | None = None,
    log: Callable[[str, dict[str, Any]], None] | None = None,
) -> WebhookConnection | None:
    """Switch an outgoing-webhook portal's events to change polling (``polling``) or back to the
    outgoing webhook: an explicit, logged operation. The outgoing webhook's token is kept either way,
    so its events are still accepted (and show when the queue delivers again). Returns the switched
    connection, or ``None`` when nothing was switched: no outgoing webhook, or already in that mode."""
    for _ in range(8):
        conn = webhooks.get(member_id)
        if conn is None or not conn.outgoing_token or bool(conn.polling_since) == polling:
            return None
        since = int(time.time() if now is None else now) if polling else 0
        switched = replace(conn, polling_since=since, polling_reason=reason if polling else "")
        try:
            saved = webhooks.save(switched)
        except StaleWrite:
            continue
        (log or _log)(
            "events mode switched",
            {
                "member_id": member_id,
                "events_from": conn.events_by,
                "events_to": saved.events_by,
                "reason": reason,
                "by": by,
            },
        )
        return saved
    raise StaleWrite(member_id)


def auth_mode(member_id: str, webhooks: WebhookStore) -> AuthMode:
    return AuthMode.WEBHOOK if webhooks.get(member_id) is not None else AuthMode.OAUTH


__all__ = [
    "APP_ONLY_METHODS",
    "AuthMode",
    "Connected",
    "DynamoWebhookStore",
    "InMemoryWebhookStore",
    "IncomingWebhook",
    "WebhookConnection",
    "WebhookRefused",
    "WebhookStore",
    "auth_mode",
    "connect",
    "disconnect",
    "is_app_only",
    "parse_incoming",
    "switch_events",
    "webhook_call",
]
