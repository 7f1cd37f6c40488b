"""SQS refusing 30% of sends: of every event answered 200, none is missing from the queue.

Real parts: the portal record in DynamoDB Local, the moto SQS server behind a real HTTP proxy on
127.0.0.1 that fails 30% of SendMessage calls (half before forwarding — nothing stored — and half
after — stored, yet answered with an error, so the client retries and a duplicate is allowed).
"""

from __future__ import annotations

import base64
import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import boto3
import httpx
import pytest
from botocore.config import Config

from b24core.events import http as intake_http
from b24core.events.auth_cache import AuthCache, DynamoAuthReader
from b24core.events.intake import EventIntake
from b24core.events.sqs import SqsSink
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.store import DynamoPortalStore

EVENTS = int(__import__("os").environ.get("FAULT_EVENTS", "10000"))
APP_TOKEN = "f" * 32


class FaultyProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, failure_rate: float, seed: int = 7) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = upstream
        self.upstream_client = httpx.Client(timeout=3)  # pooled keep-alive connections to moto
        self.failure_rate = failure_rate
        self.rng = random.Random(seed)  # noqa: S311 (fault injection, not security)
        self.lock = threading.Lock()
        self.sends = self.failed_before = self.failed_after = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: FaultyProxy
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid the 40 ms stall

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        is_send = "SendMessage" in (self.headers.get("X-Amz-Target") or "")
        fail = None
        if is_send:
            with self.server.lock:
                self.server.sends += 1
                roll = self.server.rng.random()
            if roll < self.server.failure_rate / 2:
                fail = "before"
            elif roll < self.server.failure_rate:
                fail = "after"
        if fail == "before":
            with self.server.lock:
                self.server.failed_before += 1
            return self._reply(500, b'{"__type":"InternalError","message":"injected"}')
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        try:
            resp = self.server.upstream_client.post(
                self.server.upstream + self.path, content=body, headers=headers
            )
        except httpx.HTTPError:
            # The upstream did not answer in time: like a real timeout, the outcome is unknown.
            return self._reply(504, b'{"__type":"InternalError","message":"upstream timeout"}')
        data, status = resp.content, resp.status_code
        if fail == "after":
            with self.server.lock:
                self.server.failed_after += 1
            return self._reply(500, b'{"__type":"InternalError","message":"injected after store"}')
        self._reply(status, data)

    def _reply(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def api_event(i: int, member_id: str) -> dict:
    body = urlencode(
        [
            ("event", "ONCRMDEALUPDATE"),
            ("data[FIELDS][ID]", str(i)),
            ("ts", "1"),
            ("auth[member_id]", member_id),
            ("auth[domain]", "p.example.com"),
            ("auth[application_token]", APP_TOKEN),
        ]
    )
    return {
        "version": "2.0",
        "rawPath": "/events",
        "rawQueryString": "",
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "requestContext": {"http": {"method": "POST", "path": "/events"}},
        "body": base64.b64encode(body.encode()).decode(),
        "isBase64Encoded": True,
    }


@pytest.fixture
def proxy(services):
    server = FaultyProxy(services.sqs_endpoint, failure_rate=0.30)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_every_acknowledged_event_is_in_the_queue_when_sqs_refuses_30_percent(
    services, proxy, member_id, monkeypatch
):
    table = services.resources["AppTable"]
    DynamoPortalStore(table, services.region, services.dynamodb_endpoint).save(
        Portal(
            member_id=member_id,
            domain="p.example.com",
            client_endpoint="https://p.example.com/rest/",
            state=PortalState.ACTIVE,
            application_token=APP_TOKEN,
        )
    )
    sqs_direct = services.client("sqs")
    queue_url = sqs_direct.create_queue(QueueName=f"faults-{member_id[:12]}")["QueueUrl"]
    sqs_via_proxy = boto3.client(
        "sqs",
        region_name=services.region,
        endpoint_url=proxy.url,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    reader = DynamoAuthReader(services.client("dynamodb"), table)
    # The cache's lifetime outlasts the run however slow the machine is: the point is that steady
    # traffic reads the table once, not how many TTLs a loaded machine needs for 10,000 events.
    cache = AuthCache(reader, ttl_s=3600)
    intake = EventIntake(cache, SqsSink(sqs_via_proxy, queue_url, attempts=3, backoff_s=0.001))
    monkeypatch.setattr(intake_http, "_intake", lambda: intake)

    # A consumer drains the queue while events arrive, as the worker does (moto slows down on a
    # long queue); it records every message it took.
    queued: list[str] = []
    stop = threading.Event()

    def drain() -> None:
        while True:
            batch = sqs_direct.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            for m in batch:
                queued.append(json.loads(m["Body"])["data"]["FIELDS"]["ID"])
            if batch:
                sqs_direct.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)
                    ],
                )
            elif stop.is_set():
                return

    consumer = threading.Thread(target=drain, daemon=True)
    consumer.start()
    accepted: set[str] = set()
    refused = 0
    for i in range(EVENTS):
        status = intake_http.handle_event(api_event(i, member_id))["statusCode"]
        if status == 200:
            accepted.add(str(i))
        else:
            assert status == 503  # never a 200 for an event that was not stored
            refused += 1
    stop.set()
    consumer.join(timeout=120)

    assert proxy.failed_before + proxy.failed_after > 0.25 * EVENTS  # the faults really happened
    assert accepted - set(queued) == set(), "an acknowledged event is missing from the queue"
    assert len(accepted) + refused == EVENTS
    assert reader.reads <= 2  # steady state: the application token came from the cache
    print(
        f"accepted {len(accepted)}, refused {refused}, queued {len(queued)} (duplicates allowed), "
        f"injected failures {proxy.failed_before}+{proxy.failed_after} of {proxy.sends} sends"
    )
