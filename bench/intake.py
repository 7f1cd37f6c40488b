"""Intake benchmarks (issue: events without loss).

1. CPU time per event in the events function, warm, vs the floor of parsing the same body and
   serialising it to JSON (urllib.parse + json.dumps). Target <= 3x. SQS is replaced by a client that
   accepts instantly, so the figure is the function's own work (parsing, verification, stripping,
   response, logging context, EMF metrics), not the network.
2. Table reads per 1,000 events in steady state. Target 0.
3. Cold start of the events function (a fresh process: imports and client creation) vs
   `import boto3; boto3.client("sqs")` in a fresh process. Target <= 1.25x.

Run: .venv/bin/python bench/intake.py
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import ROOT, median, report  # noqa: E402

FUNCTION_DIR = ROOT / "functions" / "events"
LAYER_DIR = ROOT / "layers" / "b24core"
ENV = {
    "TABLE_NAME": "bench",
    "EVENTS_QUEUE_URL": "http://127.0.0.1:1/123456789012/bench",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "POWERTOOLS_SERVICE_NAME": "b24app",
    "POWERTOOLS_METRICS_NAMESPACE": "B24App",
    "B24_LOCAL": "1",
}
MEMBER = "a223c6b3710f85df22e9377d6c4f7553"
APP_TOKEN = "0123456789abcdef0123456789abcdef"


def event_body(i: int) -> str:
    return urllib.parse.urlencode(
        [
            ("event", "ONCRMDEALUPDATE"),
            ("event_handler_id", "7"),
            ("data[FIELDS][ID]", str(i)),
            ("ts", "1795833000"),
            ("auth[domain]", "portal.bitrix24.com"),
            ("auth[client_endpoint]", "https://portal.bitrix24.com/rest/"),
            ("auth[server_endpoint]", "https://oauth.bitrix.info/rest/"),
            ("auth[member_id]", MEMBER),
            ("auth[application_token]", APP_TOKEN),
        ]
    )


def api_event(body: str) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "POST /events",
        "rawPath": "/events",
        "rawQueryString": "",
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "requestContext": {
            "http": {"method": "POST", "path": "/events", "sourceIp": "203.0.113.1"},
            "domainName": "api.example.com",
        },
        "body": base64.b64encode(body.encode()).decode(),
        "isBase64Encoded": True,
    }


class Context:
    function_name = "EventsFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:EventsFunction"
    memory_limit_in_mb = "256"
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/EventsFunction"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 6000


class AcceptingSqs:
    def __init__(self) -> None:
        self.sent = 0

    def send_message(self, **_kwargs: Any) -> dict[str, str]:
        self.sent += 1
        return {"MessageId": "m"}


class CountingReader:
    def __init__(self) -> None:
        self.reads = 0

    def read(self, member_id: str) -> Any:
        from b24core.events.auth_cache import PortalAuth
        from b24core.portals.states import PortalState

        self.reads += 1
        return PortalAuth(member_id, PortalState.ACTIVE, APP_TOKEN)


def warm_cpu(n: int = 5000) -> None:
    os.environ.update(ENV)
    sys.path[:0] = [str(FUNCTION_DIR), str(LAYER_DIR)]
    import app  # the events function's handler module

    from b24core.events import http
    from b24core.events.auth_cache import AuthCache
    from b24core.events.intake import EventIntake
    from b24core.events.sqs import SqsSink

    reader, sqs = CountingReader(), AcceptingSqs()
    intake = EventIntake(AuthCache(reader), SqsSink(sqs, ENV["EVENTS_QUEUE_URL"]))
    http._intake.cache_clear()
    http._intake = lambda: intake  # type: ignore[assignment]
    events = [api_event(event_body(i)) for i in range(n)]
    encoded = [e["body"] for e in events]
    ctx = Context()
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        for e in events[:200]:  # warm up
            assert app.lambda_handler(e, ctx)["statusCode"] == 200
        reads_before = reader.reads
        t0 = time.process_time()
        for e in events:
            app.lambda_handler(e, ctx)
        ours = (time.process_time() - t0) / n
    reads = reader.reads - reads_before
    t0 = time.process_time()
    for b in encoded:  # the body as API Gateway hands it over (base64), parsed and serialised
        json.dumps(dict(urllib.parse.parse_qsl(base64.b64decode(b).decode())))
    floor = (time.process_time() - t0) / n
    assert sqs.sent == n + 200
    report("intake", "cpu_per_event", ours * 1e6, "us", floor * 1e6, "parse_qsl+json.dumps floor", target=3.0)
    report(
        "intake",
        "table_reads_per_1000_events",
        reads * 1000 / n,
        "reads",
        1.0,
        "one read (reference)",
        target=0.0,
    )


COLD_OURS = """
import time, sys
t0 = time.perf_counter()
import app
from b24core.events.http import _intake
_intake()
print(time.perf_counter() - t0)
"""
COLD_FLOOR = """
import time
t0 = time.perf_counter()
import boto3
boto3.client("sqs")
print(time.perf_counter() - t0)
"""


def cold_start(rounds: int = 9) -> None:
    env = {**os.environ, **ENV, "PYTHONPATH": os.pathsep.join([str(FUNCTION_DIR), str(LAYER_DIR)])}
    ours, floor = [], []
    for _ in range(rounds):  # alternate, so machine noise hits both alike
        for script, out in ((COLD_OURS, ours), (COLD_FLOOR, floor)):
            res = subprocess.run(
                [sys.executable, "-c", script],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                cwd=FUNCTION_DIR,
            )
            out.append(float(res.stdout.strip().splitlines()[-1]))
    report(
        "intake",
        "cold_start",
        median(ours) * 1000,
        "ms",
        median(floor) * 1000,
        'fresh `import boto3; boto3.client("sqs")`',
        target=1.25,
        rounds=rounds,
    )


if __name__ == "__main__":
    if "--cold-only" not in sys.argv:
        warm_cpu()
    cold_start()
