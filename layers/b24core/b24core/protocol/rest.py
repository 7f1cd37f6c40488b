"""Calling a portal's REST: ``POST {client_endpoint}{method}`` with a JSON body and the token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from b24core.logs import remember_secret
from b24core.protocol.errors import B24Error, BadResponse, TransportError, error_from_payload
from b24core.protocol.http import http_client

BATCH_LIMIT = 50


@dataclass(frozen=True)
class RestAnswer:
    result: Any
    total: int | None
    next: int | None
    time: dict[str, Any]
    raw: dict[str, Any]


def call_rest(
    endpoint: str, method: str, params: dict[str, Any], token: str, timeout_s: float = 10.0
) -> RestAnswer:
    """One REST call; platform errors become typed exceptions."""
    remember_secret(token)
    url = f"{endpoint}{method}"
    try:
        resp = http_client(timeout_s).post(url, json={**params, "auth": token})
    except httpx.HTTPError as exc:
        raise TransportError(f"{method}: portal unreachable ({type(exc).__name__})") from None
    try:
        payload = resp.json()
    except ValueError:
        raise BadResponse(
            f"{method}: HTTP {resp.status_code} without JSON", status=resp.status_code
        ) from None
    if not isinstance(payload, dict):
        raise BadResponse(f"{method}: answer is not an object", status=resp.status_code)
    if "error" in payload:
        raise error_from_payload(payload, resp.status_code)
    if resp.status_code >= 400:
        raise B24Error(f"{method}: HTTP {resp.status_code}", status=resp.status_code)
    if "result" not in payload:
        raise BadResponse(f"{method}: answer has no result", status=resp.status_code)
    total = payload.get("total")
    nxt = payload.get("next")
    return RestAnswer(
        result=payload["result"],
        total=int(total) if isinstance(total, int) else None,
        next=int(nxt) if isinstance(nxt, int) else None,
        time=time_info if isinstance(time_info := payload.get("time"), dict) else {},
        raw=payload,
    )
