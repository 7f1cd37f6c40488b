"""HTTP front: routes requests to the authorization server, the portals and the control API.

Request parameters are read like PHP reads them: query string plus body (JSON, urlencoded or multipart),
body winning. Access logs show method and path only: query strings carry ``auth=<token>``.
"""

from __future__ import annotations

import json
import logging
import re
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from b24sim import control, forms, misbehave
from b24sim.rest import normalize_method

if TYPE_CHECKING:
    from b24sim.simulator import Simulator

log = logging.getLogger("b24sim.http")

#: ``rest/{user_id}/{code}/{method}``: an incoming webhook call (the code authorizes it).
_WEBHOOK_PATH = re.compile(r"rest/(\d+)/([0-9A-Za-z]+)/([^/]+)/?")
_WEBHOOK_CODE = re.compile(r"(/rest/\d+/)[0-9A-Za-z]+/")
NOT_FOUND_PAGE = "<html><head><title>404 Not Found</title></head><body>Not Found</body></html>"


class Redirect(str):
    """A reply that sends ``302 Found`` with this string as ``Location``."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a burst of new connections (twenty Lambdas calling
    # one portal at once) would be reset, which no real portal does.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sim: Simulator) -> None:
        super().__init__(address, _Handler)
        self.sim = sim

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            # The caller gave up (its timeout is shorter than a slow portal's answer): nothing to report.
            log.info("client %s went away before the answer", client_address[0])
            return
        super().handle_error(request, client_address)


def make_server(sim: Simulator, host: str, port: int) -> _Server:
    return _Server((host, port), sim)


class _PortalHost(_Server):
    """A portal on its own address, like a real one: ``http://{domain}/rest/`` where the domain is
    ``host:port``. The install frame's DOMAIN then yields the true client endpoint."""

    def __init__(self, address: tuple[str, int], sim: Simulator) -> None:
        super().__init__(address, sim)
        self.portal_domain = ""


def make_portal_host(sim: Simulator, host: str) -> _PortalHost:
    return _PortalHost((host, 0), sim)


def _multipart(content_type: str, body: bytes) -> list[tuple[str, str]]:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    pairs: list[tuple[str, str]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            pairs.append((name, payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""))
    return pairs


def read_params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    params = forms.parse(query)
    ctype = content_type.split(";")[0].strip().lower()
    if not body:
        return params
    if ctype == "application/json" or (not ctype and body.lstrip()[:1] == b"{"):
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            params.update(decoded)
    elif ctype == "multipart/form-data":
        params.update(forms.parse_pairs(_multipart(content_type, body)))
    else:
        params.update(forms.parse(body.decode("utf-8", "replace")))
    return params


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "b24sim/1.0"
    # Headers and body go out in two writes; without this, keep-alive clients wait ~40 ms per call.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    # BaseHTTPRequestHandler logs the request line, which contains ?auth=TOKEN: log the path only.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = _WEBHOOK_CODE.sub(r"\1***/", urlsplit(self.path).path)  # a webhook's code is a secret
        log.debug("%s %s -> %s", self.command, path, code)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: %s", format)

    def _bearer(self) -> str | None:
        header = self.headers.get("Authorization") or ""
        return header[7:].strip() if header.lower().startswith("bearer ") else None

    def _handle(self, verb: str) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        sim = self.server.sim
        own_domain = getattr(self.server, "portal_domain", "")
        if own_domain and not path.startswith("/_sim/"):
            path = f"/p/{own_domain}{path}"
        try:
            status, payload = self._route(sim, verb, path, parts.query, body)
        except Exception:
            log.exception("internal error while serving %s %s", verb, _WEBHOOK_CODE.sub(r"\1***/", path))
            status, payload = (
                500,
                {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"},
            )
        self._send(status, payload)

    def _route(self, sim: Simulator, verb: str, path: str, query: str, body: bytes) -> tuple[int, Any]:
        if path.startswith("/_sim/"):
            return control.handle(sim, verb, path[len("/_sim/") :].strip("/"), body)
        params = read_params(query, self.headers.get("Content-Type") or "", body)
        if path.rstrip("/") == "/oauth/token":
            return sim.oauth.token(params)
        if path == "/webhook/app-world.json" and verb == "GET":
            with sim.lock:
                sim.app_world_requests += 1
                if sim.app_world_down:
                    return 503, NOT_FOUND_PAGE
                return 200, {"nodes": list(sim.app_world_nodes)}
        if path.startswith("/rest/"):
            if normalize_method(path[len("/rest/") :]) == "app.info":
                return sim.oauth.app_info(params, self._bearer())
            return 404, {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}
        if path.startswith("/p/"):
            domain, _, rest = path[len("/p/") :].partition("/")
            portal = sim.portals.get(domain)
            if portal is None and domain in sim.redirects:
                target = f"{sim.url}/p/{sim.redirects[domain]}/{rest}"
                return 302, Redirect(f"{target}?{query}" if query else target)
            if portal is None:
                return 404, NOT_FOUND_PAGE
            hook = _WEBHOOK_PATH.fullmatch(rest)
            if hook:
                params["_sim_webhook"] = (int(hook.group(1)), hook.group(2))
                return misbehave.apply(portal, *sim.rest.handle(portal, hook.group(3), params, None))
            if rest.startswith("rest/") and rest[len("rest/") :].strip("/"):
                answer = sim.rest.handle(portal, rest[len("rest/") :], params, self._bearer())
                return misbehave.apply(portal, *answer)
            if rest.rstrip("/") == "oauth/token" and portal.profile == "cloud":
                # The cloud proxies portal/oauth/token/ to the authorization server; a box may not.
                return sim.oauth.token(params)
        return 404, NOT_FOUND_PAGE

    def _send(self, status: int, payload: Any) -> None:
        if isinstance(payload, misbehave.SlowAnswer):
            payload.write(self, status)
            return
        if isinstance(payload, Redirect):
            self.send_response(status)
            self.send_header("Location", str(payload))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if isinstance(payload, str):
            data, ctype = payload.encode(), "text/html; charset=utf-8"
        else:
            data, ctype = json.dumps(payload, ensure_ascii=False).encode(), "application/json; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
