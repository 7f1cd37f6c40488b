"""Calling a portal's REST: ``POST {client_endpoint}{method}`` with a JSON body and the token.

One request, one answer: platform errors become typed exceptions, a redirect becomes ``PortalMoved``
(never followed here: the body carries a token, and a new address is believed only after the
authorization server confirms it), and the ``time`` block is kept for the limits bookkeeping.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx

from b24core.aws.logs import remember_secret
from b24core.bitrix.errors import (
    B24Error,
    BadResponse,
    OperationTimeLimit,
    PortalMoved,
    error_from_payload,
    error_from_status,
)
from b24core.bitrix.http import fetch, http_client
from b24core.bitrix.values import as_epoch, as_int

BATCH_LIMIT = 50
PAGE_SIZE = 50
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class RestAnswer:
    result: Any
    total: int | None
    next: int | None
    time: dict[str, Any]
    raw: dict[str, Any]


class _OperatingResets:
    """The last ``operating_reset_at`` seen per (endpoint, method) in this process (a deliberate cache).

    limits.md: an OPERATION_TIME_LIMIT answer is retried no earlier than the reset time of the last
    successful answer, which the error itself may not carry.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self._cache: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def remember(self, endpoint: str, method: str, time_info: dict[str, Any]) -> None:
        value = time_info.get("operating_reset_at")
        if value is None:
            return
        reset_at = as_epoch(value)
        if reset_at is None:
            return
        with self._lock:
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[(endpoint, method)] = reset_at

    def get(self, endpoint: str, method: str) -> float | None:
        with self._lock:
            return self._cache.get((endpoint, method))


operating_resets = _OperatingResets()


def _number(value: Any) -> int | None:
    return as_int(value)


def call_rest(
    endpoint: str,
    method: str,
    params: dict[str, Any],
    token: str,
    timeout_s: float = 10.0,
    client: httpx.Client | None = None,
) -> RestAnswer:
    """One REST call; platform errors become typed exceptions."""
    remember_secret(token)
    url = f"{endpoint}{method}"
    http = client or http_client(timeout_s)
    # An empty token: the endpoint itself authorizes the call (an incoming webhook's URL carries its code).
    body = {**params, "auth": token} if token else dict(params)
    resp = fetch(http, "POST", url, json=body, timeout_s=timeout_s, what=method)
    if resp.status_code in _REDIRECTS:
        location = resp.headers.get("location") or ""
        if not location:
            raise BadResponse(f"{method}: HTTP {resp.status_code} without Location", status=resp.status_code)
        raise PortalMoved(
            f"{method}: the portal answered HTTP {resp.status_code} (address changed)",
            status=resp.status_code,
            location=urljoin(url, location),
        )
    try:
        payload = json.loads(resp.content)
    except ValueError:
        if resp.status_code in (401, 402, 429) or resp.status_code >= 500:
            raise error_from_status(resp.status_code, f"{method}: answer without JSON") from None
        raise BadResponse(
            f"{method}: HTTP {resp.status_code} without JSON", status=resp.status_code
        ) from None
    if not isinstance(payload, dict):
        raise BadResponse(f"{method}: answer is not an object", status=resp.status_code)
    if "error" in payload:
        err = error_from_payload(payload, resp.status_code)
        if isinstance(err, OperationTimeLimit) and err.reset_at is None:
            err.reset_at = operating_resets.get(endpoint, method)
        raise err
    if resp.status_code >= 400:
        raise error_from_status(resp.status_code, method)
    if "result" not in payload:
        raise BadResponse(f"{method}: answer has no result", status=resp.status_code)
    time_info = payload.get("time")
    time_info = time_info if isinstance(time_info, dict) else {}
    operating_resets.remember(endpoint, method, time_info)
    return RestAnswer(
        result=payload["result"],
        total=_number(payload.get("total")),
        next=_number(payload.get("next")),
        time=time_info,
        raw=payload,
    )


def endpoint_from_location(location: str, method: str, old_endpoint: str) -> str:
    """The client endpoint a redirect for ``{old_endpoint}{method}`` points to."""
    base = location.split("?", 1)[0].split("#", 1)[0]
    for suffix in (f"{method}.json", method):
        if base.lower().endswith(suffix.lower()):
            return base[: len(base) - len(suffix)]
    parts = httpx.URL(base)
    old = httpx.URL(old_endpoint)
    return str(parts.copy_with(path=old.path, query=None, fragment=None))


__all__ = [
    "BATCH_LIMIT",
    "PAGE_SIZE",
    "B24Error",
    "RestAnswer",
    "call_rest",
    "endpoint_from_location",
    "operating_resets",
]
