"""API Gateway HTTP API (payload format 2.0) in front of the local functions.

Requests are matched to the template's HttpApi routes the way API Gateway does it (most specific
route first, ``ANY`` after explicit methods, greedy ``{proxy+}`` last, ``$default`` at the end),
turned into a real v2 event, and the function's answer is turned back into an HTTP response with
the v2 rules (a dict with ``statusCode`` is taken as is, anything else becomes a 200 JSON body).

Bodies: API Gateway delivers ``text/*``, ``application/json``, ``application/xml`` and
``application/javascript`` bodies as UTF-8 text and base64-encodes everything else, including
``application/x-www-form-urlencoded`` and requests without a Content-Type (verified against real
HTTP APIs); handlers must therefore check ``isBase64Encoded``, and locally they have to as well.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from .http_util import BodyTooLargeError, JsonHandler, LocalHTTPServer
from .lambda_env import Functions

__all__ = [
    "MAX_BODY",
    "GatewayApp",
    "GatewayServer",
    "Route",
    "build_event",
    "is_text_content",
    "response_from_result",
    "start_gateway",
]

log = logging.getLogger("b24stack")

MAX_BODY = 10 * 1024 * 1024
_TEXT_TYPES = ("application/json", "application/xml", "application/javascript")
_HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive"}
# Hop-by-hop request headers end at API Gateway's edge and never reach the function.
_DROPPED_REQUEST_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "transfer-encoding",
}


@dataclass
class Route:
    """One HttpApi route: ``method`` is upper-case or ``ANY``; ``path`` None means ``$default``."""

    function_id: str
    method: str
    path: str | None
    api_id: str = "local"
    account_id: str = "123456789012"
    regex: re.Pattern[str] | None = field(default=None, repr=False)
    params: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.path is None:
            return
        pattern, params = "", []
        for part in re.split(r"(\{[^}]+\})", self.path):
            if part.startswith("{") and part.endswith("}"):
                name = part[1:-1]
                greedy = name.endswith("+")
                params.append(name.rstrip("+"))
                pattern += f"(?P<p{len(params) - 1}>.+)" if greedy else f"(?P<p{len(params) - 1}>[^/]+)"
            else:
                pattern += re.escape(part)
        self.regex = re.compile(f"^{pattern}$")
        self.params = params

    @property
    def key(self) -> str:
        return "$default" if self.path is None else f"{self.method} {self.path}"

    @property
    def greedy(self) -> bool:
        return self.path is not None and "+}" in self.path

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.path is None:
            return {}
        if self.method not in ("ANY", method):
            return None
        assert self.regex is not None
        found = self.regex.match(path)
        if not found:
            return None
        return {name: unquote(found[f"p{i}"]) for i, name in enumerate(self.params)}

    def rank(self) -> tuple[int, int, int, int]:
        """Sort key: lower is more specific."""
        if self.path is None:
            return (2, 0, 0, 0)
        literal = len([s for s in self.path.split("/") if s and not s.startswith("{")])
        return (1 if self.greedy else 0, -literal, len(self.params), 1 if self.method == "ANY" else 0)


class GatewayApp(Protocol):
    """What the gateway needs from the stack."""

    @property
    def functions(self) -> Functions | None: ...

    @property
    def is_ready(self) -> bool: ...

    @property
    def routes(self) -> list[Route]: ...


def is_text_content(content_type: str | None) -> bool:
    """Whether API Gateway passes a body of this Content-Type as text (else base64)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES


def _request_id() -> str:
    return base64.b64encode(os.urandom(11)).decode()[:15] + "="


def build_event(
    *,
    route: Route,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    params: dict[str, str],
    request_id: str,
) -> dict[str, Any]:
    """The payload format 2.0 event API Gateway would send for this request."""
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key in _DROPPED_REQUEST_HEADERS:
            continue
        if key == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    merged["x-forwarded-for"] = (
        f"{merged['x-forwarded-for']}, {source_ip}" if "x-forwarded-for" in merged else source_ip
    )
    host = merged.get("host", "localhost")
    merged.setdefault("x-forwarded-proto", "http")
    merged.setdefault("x-forwarded-port", host.rsplit(":", 1)[1] if ":" in host else "80")
    merged.setdefault("x-amzn-trace-id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}")
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = merged
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": route.account_id,
        "apiId": route.api_id,
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": method,
            "path": unquote(raw_path),
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": merged.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if params:
        event["pathParameters"] = params
    if body:
        if is_text_content(merged.get("content-type")):
            event["body"] = body.decode("utf-8", errors="replace")
            event["isBase64Encoded"] = False
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


def response_from_result(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body for a function's v2 response; ValueError if it is malformed."""
    if not (isinstance(result, dict) and "statusCode" in result):
        text = result if isinstance(result, str) else json.dumps(result)
        return 200, [("Content-Type", "application/json")], text.encode()
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError):
        raise ValueError("statusCode is not an integer") from None
    if not 100 <= status <= 599:
        raise ValueError("statusCode out of range")
    headers: list[tuple[str, str]] = []
    for key, value in (result.get("headers") or {}).items():
        if key.lower() not in _HOP_HEADERS:
            headers.append((str(key), _header_value(value)))
    for key, values in (result.get("multiValueHeaders") or {}).items():
        if key.lower() not in _HOP_HEADERS:
            headers += [(str(key), _header_value(v)) for v in values or []]
    headers += [("Set-Cookie", str(c)) for c in result.get("cookies") or []]
    raw = result.get("body")
    if raw is None:
        body = b""
    elif result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(str(raw), validate=False)
        except binascii.Error:
            raise ValueError("body is not valid base64") from None
    else:
        body = (raw if isinstance(raw, str) else json.dumps(raw)).encode()
    return status, headers, body


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _GatewayHandler(JsonHandler):
    server: GatewayServer

    def _handle(self) -> None:
        try:
            self._serve()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            log.exception("gateway failed on %s %s", self.command, urlsplit(self.path).path)
            self.close_connection = True
            self.reply_json(500, {"message": "Internal Server Error"}, [("Connection", "close")])

    def _serve(self) -> None:
        app = self.server.app
        request_id = _request_id()
        ids = [("apigw-requestid", request_id)]
        started = time.monotonic()
        try:
            body = self.read_body(MAX_BODY)
        except BodyTooLargeError:
            self.close_connection = True
            self.reply_json(413, {"message": "Request Entity Too Large"}, [*ids, ("Connection", "close")])
            return
        functions = app.functions
        if not app.is_ready or functions is None:
            self.reply_json(503, {"message": "starting"}, ids)
            return
        parts = urlsplit(self.path)
        raw_path = parts.path or "/"
        method = self.command.upper()
        decoded = unquote(raw_path)
        candidates = [(r, r.match(method, decoded)) for r in app.routes]
        matches = sorted(((r, p) for r, p in candidates if p is not None), key=lambda rp: rp[0].rank())
        if not matches:
            self.reply_json(404, {"message": "Not Found"}, ids)
            return
        route, params = matches[0]
        event = build_event(
            route=route,
            method=method,
            raw_path=raw_path,
            raw_query=parts.query,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            params=params,
            request_id=request_id,
        )
        result = functions.invoke(route.function_id, event)
        if not result.ok:
            status = 500
            self.reply_json(500, {"message": "Internal Server Error"}, ids)
        else:
            try:
                status, headers, payload = response_from_result(result.payload)
            except ValueError as exc:
                log.warning("%s returned a malformed response: %s", route.function_id, exc)
                status = 500
                self.reply_json(500, {"message": "Internal Server Error"}, ids)
            else:
                self.reply(status, payload, [*headers, *ids])
        # Path only: query strings and bodies can carry tokens.
        log.info(
            "%s %s -> %s %d (%.0f ms)",
            method,
            raw_path,
            route.function_id,
            status,
            (time.monotonic() - started) * 1000,
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class GatewayServer(LocalHTTPServer):
    app: GatewayApp


def start_gateway(app: GatewayApp, host: str = "127.0.0.1", port: int = 3000) -> GatewayServer:
    server = GatewayServer(host, port, _GatewayHandler, app)
    server.start("b24stack-gateway")
    return server
