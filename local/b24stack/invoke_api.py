"""The Lambda Invoke API, served locally so function code calls other functions unchanged.

Functions get ``AWS_ENDPOINT_URL_LAMBDA`` pointing here, so ``boto3.client("lambda").invoke(...)``
works exactly as in the cloud: RequestResponse answers 200 with the result (plus
``X-Amz-Function-Error: Unhandled`` when the function raised), Event answers 202 and runs in
the background. The same server carries two local-only routes: ``POST /_local/schedules/<Id>/<Event>``
fires a schedule by hand and ``GET /_local/status`` reports what is running.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from .http_util import BodyTooLargeError, JsonHandler, LocalHTTPServer
from .lambda_env import Functions, InvokeResult

__all__ = ["InvokeApp", "InvokeServer", "start_invoke_server"]

log = logging.getLogger("b24stack")

_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
_SCHEDULE = re.compile(r"^/_local/schedules/(?P<fn>[^/]+)/(?P<event>[^/]+)/?$")
_SYNC_LIMIT = 6 * 1024 * 1024
_ASYNC_LIMIT = 256 * 1024


class InvokeApp(Protocol):
    """What the server needs from the stack."""

    @property
    def functions(self) -> Functions | None: ...

    @property
    def is_ready(self) -> bool: ...

    def fire_schedule_result(self, function_id: str, event_name: str) -> InvokeResult: ...

    def status(self) -> dict[str, Any]: ...


def _aws_error(handler: JsonHandler, status: int, error_type: str, message: str) -> None:
    handler.reply_json(
        status,
        {"Type": "User", "Message": message, "message": message},
        [("x-amzn-ErrorType", error_type)],
    )


class _InvokeHandler(JsonHandler):
    server: InvokeServer

    def do_GET(self) -> None:
        app = self.server.app
        if urlsplit(self.path).path.rstrip("/") == "/_local/status":
            self.reply_json(200, app.status())
            return
        _aws_error(self, 404, "ResourceNotFoundException", "Not Found")

    def do_POST(self) -> None:
        try:
            self._post()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            log.exception("invoke API failed on %s", urlsplit(self.path).path)
            self.close_connection = True
            _aws_error(self, 500, "ServiceException", f"local invoke failed: {exc}")

    def _post(self) -> None:
        app = self.server.app
        path = urlsplit(self.path).path
        try:
            body = self.read_body(_SYNC_LIMIT)
        except BodyTooLargeError:
            self.close_connection = True
            _aws_error(
                self, 413, "RequestEntityTooLargeException", "Request must be smaller than 6291456 bytes"
            )
            return
        functions = app.functions
        if not app.is_ready or functions is None:
            _aws_error(self, 503, "ServiceException", "the local stack is starting")
            return
        match = _SCHEDULE.match(path)
        if match:
            self._fire(app, unquote(match["fn"]), unquote(match["event"]))
            return
        match = _INVOKE.match(path)
        if not match:
            _aws_error(self, 404, "ResourceNotFoundException", "Not Found")
            return
        self._invoke(functions, unquote(match["name"]), body)

    def _fire(self, app: InvokeApp, function_id: str, event_name: str) -> None:
        try:
            result = app.fire_schedule_result(function_id, event_name)
        except KeyError as exc:
            _aws_error(self, 404, "ResourceNotFoundException", str(exc.args[0] if exc.args else exc))
            return
        if result.ok:
            self.reply_json(200, result.payload, [("X-Amz-Request-Id", result.request_id)])
        else:
            self.reply_json(
                502,
                result.error,
                [("X-Amz-Function-Error", "Unhandled"), ("X-Amz-Request-Id", result.request_id)],
            )

    def _invoke(self, functions: Functions, name: str, body: bytes) -> None:
        logical_id = functions.lookup(name)
        if logical_id is None:
            _aws_error(self, 404, "ResourceNotFoundException", f"Function not found: {name}")
            return
        try:
            event = json.loads(body) if body.strip() else {}
        except ValueError:
            _aws_error(self, 400, "InvalidRequestContentException", "Could not parse request body into json")
            return
        invocation_type = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type == "DryRun":
            self.reply(204, b"")
            return
        if invocation_type == "Event":
            if len(body) > _ASYNC_LIMIT:
                _aws_error(
                    self, 413, "RequestEntityTooLargeException", "Request must be smaller than 262144 bytes"
                )
                return
            request_id = functions.invoke_async(logical_id, event)
            self.reply(202, b"", [("X-Amz-Request-Id", request_id)])
            return
        result = functions.invoke(logical_id, event)
        headers = [("X-Amz-Executed-Version", "$LATEST"), ("X-Amz-Request-Id", result.request_id)]
        if result.ok:
            self.reply_json(200, result.payload, headers)
        else:
            self.reply_json(200, result.error, [*headers, ("X-Amz-Function-Error", "Unhandled")])


class InvokeServer(LocalHTTPServer):
    app: InvokeApp


def start_invoke_server(app: InvokeApp, host: str = "127.0.0.1", port: int = 0) -> InvokeServer:
    server = InvokeServer(host, port, _InvokeHandler, app)
    server.start("b24stack-invoke-api")
    return server
