"""Incoming webhooks on the wire: ``{client_endpoint}{user_id}/{code}/{method}``, checked by the portal
itself (local-integrations/local-webhooks.md), so they work on a box cut off from the authorization
server.

``parse_incoming`` refuses a URL that is not https or points at a private/loopback address (both allowed
in local mode only), or is not shaped like an incoming webhook. The code is a secret like a token:
remembered for redaction, masked in httpx's own request log, never in a view, a log or an error.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx

from b24core.aws.logs import mask_known, remember_secret
from b24core.bitrix.endpoints import not_public
from b24core.bitrix.errors import B24Error, PortalMoved
from b24core.bitrix.rest import RestAnswer, call_rest

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


class WebhookRefused(ValueError):
    """The webhook cannot be connected; the message says why (never the code). Nothing was stored."""


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
    return not_public(ipaddress.ip_address(address.split("%", 1)[0]))


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


logging.getLogger("httpx").addFilter(_MaskUrls())
