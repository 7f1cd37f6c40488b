"""Event storm (issue: events without loss): a mass change on one portal, X=50, Y=2.

5,000 deal updates (4,000 deals, 1,000 repeats) are queued while the worker's event source is paused,
then let go; the worker pipeline of template.yaml (local stack, real simulator, DynamoDB Local, moto SQS)
runs until the example app's mirror holds the latest version of every deal. Printed against the
theoretical minimum for the portal's limit: a consumer that reads 50 deals per request needs
ceil(4000/50) = 80 requests; the bucket gives X = 50 at once and then Y per second, so (80 - 50) / Y.

At the real limit (Y = 2/s, ``k = 1``) that minimum is 15 s, and the worker's own bookkeeping must keep
up with it (target 1.5x); the time-scaled run (``k = 10``: Y = 0.2/s, minimum 150 s; X unchanged) shows
the limit's pace alone (target 1.15x).

Also printed: the requests spent vs ceil(deals / 50), the worker's DynamoDB and SQS requests per event
(b24stack.aws_calls), one read per event at the same limit (computed), and fast_bitrix24
(bench/peer_fast_bitrix24.py) reading the same deals from the same portal and limit. Each run appends
one line ``"bench": "event_storm"`` (k, workers, wall_s, minimum_s, ratio, rest_requests, requests per
event, worker_busy_s: the sum of the worker's invocation durations, memory_mb: its MemorySize) and the
peer's ``"bench": "event_storm_peer"`` to bench/results/event_storm.jsonl (the cost script reads them).

Run: .venv/bin/python bench/event_storm.py [--deals 4000 --events 5000 --workers 1 --time-scale 10]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import ROOT, record, report  # noqa: E402

from b24core.events.message import QueuedEvent  # noqa: E402
from b24sim import Simulator  # noqa: E402
from b24sim.ratelimit import LeakyBucket  # noqa: E402
from b24stack.aws_calls import ENV_VAR as AWS_CALLS_ENV  # noqa: E402
from b24stack.stack import LocalStack  # noqa: E402

X, Y = 50, 2.0
PEER = True
KEEP_LOGS = ""  # --keep-logs DIR: the stack's logs of each run (the functions' REPORT lines, moto's)


def mirror_current(ddb, table: str, member_id: str, want: dict[str, str]) -> int:
    """How many deals the mirror (the example app's storage) holds in their latest version."""
    from b24core.portals.app_data import DynamoAppStorage

    storage = DynamoAppStorage(ddb, table, member_id)
    return sum(
        1
        for key, deal in storage.items("deal/")
        if "/history/" not in key and want.get(key.removeprefix("deal/")) == deal.get("TITLE")
    )


def run(deals: int, events: int, workers: int, scale: float) -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    y = Y / scale
    rng = random.Random(5)
    with Simulator("bench.app", secrets.token_hex(16)) as sim, tempfile.TemporaryDirectory() as state:
        env = {
            "B24_CLIENT_ID": "bench.app",
            "B24_CLIENT_SECRET": sim._client_secret,
            "B24_OAUTH_URL": sim.oauth_url,
            "B24_ALLOW_INSECURE_ENDPOINTS": "1",
            "B24_RATE_X": str(X),
            "B24_RATE_Y": str(y),
            # Every AWS call the functions make is recorded (b24stack.aws_calls): requests per event.
            AWS_CALLS_ENV: str(Path(state) / "aws-calls"),
        }
        with LocalStack(
            ROOT,
            port=0,
            state_dir=Path(state),
            in_memory=True,
            env_overrides=env,
            schedules=False,
            pool_size=max(1, workers),
            pollers_per_queue=max(1, workers),
        ) as stack:
            portal = sim.add_portal(profile="cloud", rate=(X, y))
            assert sim.install(portal.domain, f"{stack.gateway_url}/install", mode="ui").status_code == 200
            stack.wait_idle()
            changed = time.time() - 5  # the storm's changes happened before it is processed
            ids = [portal.deals.add({"TITLE": f"v1-{i}"}, 1, changed) for i in range(deals)]
            want = {}
            for i, deal_id in enumerate(ids):
                portal.deals.update(deal_id, {"TITLE": f"v2-{i}"}, 1, changed)
                want[str(deal_id)] = f"v2-{i}"
            order = ids + [rng.choice(ids) for _ in range(events - deals)]
            rng.shuffle(order)
            sqs = stack.client("sqs")
            queue = stack.resources["EventsQueue"]
            ddb = stack.client("dynamodb")
            table = stack.resources["AppTable"]
            # The storm is queued while the worker's event source is paused, then let go at once: what is
            # timed is the worker pipeline against the portal's limit, not how fast moto takes 5,000 sends.
            stack.pause_queues()
            time.sleep(3)
            t_fill = time.monotonic()
            for start in range(0, len(order), 10):
                entries = [
                    {
                        "Id": str(n),
                        "MessageBody": QueuedEvent(
                            event="ONCRMDEALUPDATE",
                            member_id=portal.member_id,
                            domain=portal.domain,
                            data={"FIELDS": {"ID": str(d)}},
                            ts=str(int(changed)),
                            received_at=int(changed),
                        ).to_json(),
                    }
                    for n, d in enumerate(order[start : start + 10])
                ]
                sqs.send_message_batch(QueueUrl=queue, Entries=entries)
            injected = time.monotonic() - t_fill
            # Both views of the bucket start empty: the portal's and the shared limiter's.
            portal.bucket = LeakyBucket(X, y, sim.clock.now)
            ddb.delete_item(
                TableName=table, Key={"pk": {"S": f"PORTAL#{portal.member_id}"}, "sk": {"S": "RATE"}}
            )
            sim.calls.clear()
            worker_log = Path(state) / "aws-calls" / "EventWorkerFunction.jsonl"
            lambda_log = stack.logs_dir / "EventWorkerFunction.log"
            before = _aws_calls(worker_log)
            before_reports = len(_reports(lambda_log))
            t0 = time.monotonic()
            stack.pause_queues(False)
            # Reading the whole mirror costs DynamoDB Local and this process much CPU per look: while
            # messages are queued it is read every 2 s, once the queue is drained (the mirror is written
            # before a message is deleted) every half second until it is current.
            looked = 0.0
            while True:
                drained = not _queued(sqs, queue)
                if drained or time.monotonic() - looked >= 2.0:
                    looked = time.monotonic()
                    if mirror_current(ddb, table, portal.member_id, want) >= deals:
                        break
                time.sleep(0.5 if drained else 0.25)
            wall = time.monotonic() - t0
            made = _aws_calls(worker_log)[len(before) :]
            aws = Counter(c["service"] for c in made)
            operations = dict(Counter(f"{c['service']}.{c['operation']}" for c in made))
            invocations = _reports(lambda_log)[before_reports:]
            calls = [c for c in sim.calls if c.domain == portal.domain]
            limited = sum(1 for c in calls if c.error == "QUERY_LIMIT_EXCEEDED")
            methods = dict(Counter(c.method for c in calls))
            peer = run_peer(sim, portal, ids, y) if PEER else None
            if KEEP_LOGS:
                shutil.copytree(
                    stack.logs_dir, Path(KEEP_LOGS) / run_name(workers, scale), dirs_exist_ok=True
                )
    least = math.ceil(deals / 50)
    minimum = max(0.0, (least - X) / y)
    naive = max(0.0, (events - X) / y)
    name = run_name(workers, scale)
    common = {"deals": deals, "events": events, "time_scale": scale, "x": X, "y": y}
    report(
        "event_storm",
        f"{name}_wall",
        wall,
        "s",
        minimum,
        f"theoretical minimum for the limit: ({least} requests - X) / Y",
        target=1.15 if scale > 1 else 1.5,  # issue 14: k = 10 within 1.15x, the real limit within 1.5x
        requests=len(calls),
        query_limit_exceeded=limited,
        methods=methods,
        enqueue_s=round(injected, 1),
        **common,
    )
    report(
        "event_storm",
        f"{name}_requests",
        len(calls),
        "requests",
        least,
        "ceil(deals / 50): every deal read once, 50 per batch request",
        **common,
    )
    # The worker's own AWS requests (the event source's receives and deletes, ten records each, are
    # the queue's: about 0.2 per event on top of the SQS figure).
    report(
        "event_storm",
        f"{name}_dynamodb_requests_per_event",
        aws["dynamodb"] / events,
        "requests/event",
        1.0,
        "one DynamoDB request per event (bookkeeping: idempotency, read marks, limiter, the app's writes)",
        target=0.5,
        dynamodb_requests=aws["dynamodb"],
        **common,
    )
    report(
        "event_storm",
        f"{name}_sqs_requests_per_event",
        aws["sqs"] / events,
        "requests/event",
        1.0,
        "one SQS request per event (the worker's own: events sent back, visibility changes)",
        sqs_requests=aws["sqs"],
        **common,
    )
    report(
        "event_storm",
        f"{name}_vs_one_read_per_event",
        wall,
        "s",
        naive,
        "one read per event at the same limit (computed: (events - X) / Y)",
        **common,
    )
    record(
        "event_storm",
        date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        k=scale,
        workers=workers,
        wall_s=round(wall, 2),
        minimum_s=minimum,
        ratio=round(wall / minimum, 3) if minimum else None,
        rest_requests=len(calls),
        query_limit_exceeded=limited,
        dynamodb_requests=aws["dynamodb"],
        sqs_requests=aws["sqs"],
        dynamodb_requests_per_event=round(aws["dynamodb"] / events, 4),
        sqs_requests_per_event=round(aws["sqs"] / events, 4),
        operations=operations,
        # Objects read in all (more than the deals: some were read twice) and the requests' sizes.
        objects_read=sum(c.subcalls for c in calls if c.was_batch),
        read_sizes=dict(sorted(Counter(c.subcalls for c in calls if c.was_batch).items())),
        # When each part-filled request went out (seconds into the storm, portal clock) and its size.
        partial_reads=[
            (round(c.at - calls[0].at, 1), c.subcalls) for c in calls if c.was_batch and c.subcalls < 50
        ],
        worker_invocations=len(invocations),
        worker_busy_s=round(sum(ms for ms, _ in invocations) / 1000, 2),
        memory_mb=max((mb for _, mb in invocations), default=0),
        **common,
    )
    print(f"event_storm: the worker's AWS requests by operation: {operations}")
    sizes = Counter(c.subcalls for c in calls if c.was_batch)
    print(
        f"event_storm: {sum(c.subcalls for c in calls if c.was_batch)} objects read for {deals} deals; "
        f"reads per batch request: {dict(sorted(sizes.items()))}"
    )
    if peer is not None:
        slow = peer["slow1"]
        record(
            "event_storm_peer",
            file="event_storm",
            date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            k=scale,
            peer="fast_bitrix24",
            wall_s=round(slow["wall_s"], 2),
            minimum_s=minimum,
            ratio=round(slow["wall_s"] / minimum, 3) if minimum else None,
            rest_requests=slow["requests"],
            query_limit_exceeded=slow["query_limit_exceeded"],
            complete=slow["complete"],
            mode="slow(1)",
            **common,
        )
        report(
            "event_storm",
            f"{name}_vs_fast_bitrix24_slow1",
            wall,
            "s",
            slow["wall_s"] if slow["complete"] else 0.0,
            "fast_bitrix24 get_by_ID in slow(1), reading the same deals from the same simulator and limit",
            peer_requests=slow["requests"],
            peer_query_limit_exceeded=slow["query_limit_exceeded"],
            peer_complete=slow["complete"],
            **common,
        )
        default = peer["default"]
        print(
            f"event_storm: fast_bitrix24 with its defaults read {default['deals_read']} of {deals} deals in "
            f"{default['wall_s']:.1f} s ({default['requests']} requests, "
            f"{default['query_limit_exceeded']} answered QUERY_LIMIT_EXCEEDED"
            + (", then gave up)" if not default["complete"] else ")")
        )
    print(
        f"event_storm: {len(calls)} portal requests ({least} at least), "
        f"{limited} answered QUERY_LIMIT_EXCEEDED (methods: {methods}); "
        f"storm queued in {injected:.1f} s before the clock started"
    )


def _queued(sqs: Any, queue: str) -> int:
    """Messages in the events queue: visible, in flight and delayed (events held or sent back)."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    names.append("ApproximateNumberOfMessagesDelayed")
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=names)["Attributes"]
    return sum(int(attrs.get(name, 0)) for name in names)


def run_name(workers: int, scale: float) -> str:
    return f"storm_{workers}_worker{'s' if workers > 1 else ''}_scale_{scale:g}"


def _aws_calls(path: Path) -> list[dict[str, Any]]:
    """The calls recorded so far (one JSON line each)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _reports(path: Path) -> list[tuple[float, int]]:
    """(duration ms, memory MB) of each invocation the function's log reported so far (REPORT lines)."""
    if not path.exists():
        return []
    pattern = r"REPORT RequestId: \S+\tDuration: ([0-9.]+) ms\t.*?Memory Size: (\d+) MB"
    found = re.findall(pattern, path.read_text(encoding="utf-8", errors="replace"))
    return [(float(ms), int(mb)) for ms, mb in found]


def run_peer(sim: Simulator, portal: Any, ids: list[int], y: float) -> dict[str, Any]:
    """fast_bitrix24 reads the same deals from the same portal, its bucket emptied first: once with the
    client's defaults and once inside its documented ``slow(1)``."""
    from peer_fast_bitrix24 import read_with_fast_bitrix24

    webhook = portal.add_incoming_webhook(["crm"])
    out: dict[str, Any] = {}
    for mode, concurrent in (("default", None), ("slow1", 1)):
        portal.bucket = LeakyBucket(X, y, sim.clock.now)
        sim.calls.clear()
        got = read_with_fast_bitrix24(webhook, ids, y, X, concurrent)
        calls = [c for c in sim.calls if c.domain == portal.domain]
        got["requests"] = len(calls)
        got["query_limit_exceeded"] = sum(1 for c in calls if c.error == "QUERY_LIMIT_EXCEEDED")
        got["complete"] = got["deals_read"] == len(ids) and got["client_error"] is None
        out[mode] = got
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=4000)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=0, help="0: run with 1 and with 2 workers")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0,
        help="k: the portal drains Y/k per second (0: run k=1, then k=10)",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip the fast_bitrix24 peer")
    parser.add_argument("--keep-logs", default="", help="copy each run's stack logs under this directory")
    args = parser.parse_args()
    PEER = not args.no_peer
    KEEP_LOGS = args.keep_logs
    for k in [args.time_scale] if args.time_scale else [10.0, 1.0]:
        for w in [args.workers] if args.workers else [1, 2]:
            run(args.deals, args.events, w, k)
