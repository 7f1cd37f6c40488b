"""Answers from portals are bounded as a whole: a box that drips bytes is cut off at the deadline, a
huge answer at the size cap — against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from b24core.bitrix.errors import TransportError
from b24core.bitrix.http import ResponseTooLarge, http_client
from b24core.bitrix.rest import call_rest


class _Box(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path.startswith("/drip/"):
            body = b'{"result": "' + b"x" * 200 + b'"}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            try:
                for i in range(len(body)):  # a byte every 50 ms: each read is quick, the whole is not
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                return
        elif self.path.startswith("/huge/"):
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()  # no length: streamed until closed
            chunk = b" " * (1024 * 1024)
            try:
                self.wfile.write(b'{"result": "')
                for _ in range(50):  # 50 MiB
                    self.wfile.write(chunk)
                self.wfile.write(b'"}')
            except OSError:
                return
        else:
            body = b'{"result": {"ok": true}}'
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


@pytest.fixture(scope="module")
def box() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadingHTTPServer(("127.0.0.1", port), _Box)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def test_a_dripping_answer_is_cut_off_at_the_whole_request_deadline(box):
    # 200 bytes at 50 ms each take 10 s, every read is quick: only a whole-request deadline stops it.
    with pytest.raises(TransportError) as err:
        call_rest(f"{box}/drip/", "server.time", {}, "", timeout_s=1.0, client=http_client(1.0))
    assert "not complete within 1 s" in str(err.value)


def test_a_huge_answer_is_refused_at_the_cap_without_reading_it_all(box):
    with pytest.raises(ResponseTooLarge):
        call_rest(f"{box}/huge/", "crm.deal.list", {}, "", timeout_s=20.0, client=http_client(20.0))


def test_a_normal_answer_is_read(box):
    assert call_rest(f"{box}/ok/", "server.time", {}, "", timeout_s=5.0).result == {"ok": True}
