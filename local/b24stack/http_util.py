"""A small threaded HTTP server base shared by the gateway and the internal Lambda API.

The standard library server is enough for local traffic and adds no dependency. Two things it
lacks are added here: open keep-alive connections are tracked so ``close()`` really drops them
(a restarted stack on the same port must not be answered by the stopped one), and request
bodies are read with a size cap, including chunked uploads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["BodyTooLargeError", "JsonHandler", "LocalHTTPServer"]

log = logging.getLogger("b24stack")


class BodyTooLargeError(Exception):
    """The request body is over the server's limit."""


class LocalHTTPServer(ThreadingHTTPServer):
    """Threaded server that remembers its connections and carries an ``app`` object."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler], app: Any) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__((host, port), handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def start(self, name: str) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class JsonHandler(BaseHTTPRequestHandler):
    """Request handler helpers: capped body reading and JSON/bytes replies, quiet logging."""

    protocol_version = "HTTP/1.1"
    server_version = "b24stack"
    sys_version = ""
    timeout = 120

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def read_body(self, limit: int) -> bytes:
        """The request body; raises BodyTooLargeError past ``limit`` bytes."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(limit)
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            raise BodyTooLargeError
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self, limit: int) -> bytes:
        body = bytearray()
        while True:
            size_line = self.rfile.readline(65537)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(body)
            if len(body) + size > limit:
                raise BodyTooLargeError
            body += self.rfile.read(size)
            self.rfile.readline(3)

    def reply(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(status)
        for key, value in headers or []:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def reply_json(self, status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> None:
        payload = json.dumps(data).encode()
        self.reply(status, payload, [("Content-Type", "application/json"), *(headers or [])])
