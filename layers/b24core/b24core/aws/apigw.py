"""API Gateway HTTP API (payload 2.0) requests and responses, without a framework on the hot path."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl


class HttpError(Exception):
    """A client error with the status and machine-readable code the caller gets back."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    source_ip: str
    host: str

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


def parse_event(event: dict[str, Any], max_body_bytes: int) -> Request:
    """Build a Request; refuse oversized bodies before decoding or parsing them."""
    raw = event.get("body") or ""
    if not isinstance(raw, str):
        raise HttpError(400, "bad_request", "request body is not text")
    # base64 inflates by 4/3: check the encoded size first, then the decoded one.
    limit_encoded = max_body_bytes * 4 // 3 + 4 if event.get("isBase64Encoded") else max_body_bytes
    if len(raw) > limit_encoded:
        raise HttpError(413, "payload_too_large", f"request body exceeds {max_body_bytes} bytes")
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw, validate=True)
        except ValueError:
            raise HttpError(400, "bad_request", "request body is not valid base64") from None
    else:
        body = raw.encode("utf-8")
    if len(body) > max_body_bytes:
        raise HttpError(413, "payload_too_large", f"request body exceeds {max_body_bytes} bytes")
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    ctx = event.get("requestContext") or {}
    http = ctx.get("http") or {}
    query = {k: v for k, v in parse_qsl(event.get("rawQueryString") or "", keep_blank_values=True)}
    return Request(
        method=str(http.get("method") or "GET").upper(),
        path=str(event.get("rawPath") or http.get("path") or "/"),
        headers=headers,
        query=query,
        body=body,
        source_ip=str(http.get("sourceIp") or ""),
        host=str(ctx.get("domainName") or headers.get("host") or ""),
    )


FORM_TYPES = ("application/x-www-form-urlencoded", "")


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def json_response(status: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json; charset=utf-8", **SECURITY_HEADERS},
        "body": json.dumps(payload, ensure_ascii=False),
    }


def error_response(err: HttpError) -> dict[str, Any]:
    return json_response(err.status, {"error": err.code, "message": err.message})


def html_response(status: int, html: str, csp: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {
            "content-type": "text/html; charset=utf-8",
            "content-security-policy": csp,
            **SECURITY_HEADERS,
        },
        "body": html,
    }
