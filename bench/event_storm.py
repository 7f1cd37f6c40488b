"""Event storm (issue: events without loss): a mass change on one portal, X=50, Y=2.

5,000 deal updates (4,000 deals, 1,000 repeats) land in the events queue at once; the worker pipeline of
template.yaml (local stack, real simulator, DynamoDB Local, moto SQS) runs until the example app's mirror
holds the latest version of every deal. Printed against the theoretical minimum for the portal's limit:
a consumer that reads 50 deals per request needs ceil(4000/50) = 80 requests; the bucket gives 50 at once
and then 2 per second, so (80 - 50) / 2 = 15 s. One read per event would need (5000 - 50) / 2 = 2,475 s.

Run: .venv/bin/python bench/event_storm.py [--deals 4000 --events 5000 --workers 1]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import ROOT, report  # noqa: E402

from b24core.events.message import QueuedEvent  # noqa: E402
from b24sim import Simulator  # noqa: E402
from b24stack.stack import LocalStack  # noqa: E402

X, Y = 50, 2.0


def mirror_current(ddb, table: str, member_id: str, want: dict[str, str]) -> int:
    """How many deals the mirror holds in their latest version."""
    import json

    done, start = 0, None
    while True:
        kw = {
            "TableName": table,
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :d)",
            "ExpressionAttributeValues": {":p": {"S": f"PORTAL#{member_id}"}, ":d": {"S": "DEAL#"}},
            "ProjectionExpression": "deal_id, #f",
            "ExpressionAttributeNames": {"#f": "fields"},
        }
        if start:
            kw["ExclusiveStartKey"] = start
        page = ddb.query(**kw)
        for item in page["Items"]:
            fields = json.loads(item["fields"]["S"])
            if want.get(item["deal_id"]["S"]) == fields.get("TITLE"):
                done += 1
        start = page.get("LastEvaluatedKey")
        if not start:
            return done


def run(deals: int, events: int, workers: int) -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    rng = random.Random(5)
    with Simulator("bench.app", secrets.token_hex(16)) as sim, tempfile.TemporaryDirectory() as state:
        env = {
            "B24_CLIENT_ID": "bench.app",
            "B24_CLIENT_SECRET": sim._client_secret,
            "B24_OAUTH_URL": sim.oauth_url,
            "B24_ALLOW_INSECURE_ENDPOINTS": "1",
            "B24_RATE_X": str(X),
            "B24_RATE_Y": str(Y),
            "B24_WORKER_MAX_WAIT_S": "25",
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
            portal = sim.add_portal(profile="cloud", rate=(X, Y))
            assert sim.install(portal.domain, f"{stack.gateway_url}/install", mode="ui").status_code == 200
            stack.wait_idle()
            now = time.time()
            ids = [portal.deals.add({"TITLE": f"v1-{i}"}, 1, now) for i in range(deals)]
            want = {}
            for i, deal_id in enumerate(ids):
                portal.deals.update(deal_id, {"TITLE": f"v2-{i}"}, 1, now)
                want[str(deal_id)] = f"v2-{i}"
            order = ids + [rng.choice(ids) for _ in range(events - deals)]
            rng.shuffle(order)
            sim.calls.clear()
            time.sleep(max(0.0, X / Y - 0))  # let the bucket drain fully after the install's calls
            sqs = stack.client("sqs")
            queue = stack.resources["EventsQueue"]
            ddb = stack.client("dynamodb")
            table = stack.resources["AppTable"]
            t0 = time.monotonic()
            for start in range(0, len(order), 10):
                entries = [
                    {
                        "Id": str(n),
                        "MessageBody": QueuedEvent(
                            event="ONCRMDEALUPDATE",
                            member_id=portal.member_id,
                            domain=portal.domain,
                            data={"FIELDS": {"ID": str(d)}},
                            ts=str(start + n),
                            received_at=int(now),
                        ).to_json(),
                    }
                    for n, d in enumerate(order[start : start + 10])
                ]
                sqs.send_message_batch(QueueUrl=queue, Entries=entries)
            injected = time.monotonic() - t0
            while mirror_current(ddb, table, portal.member_id, want) < deals:
                time.sleep(0.5)
            wall = time.monotonic() - t0
            calls = [c for c in sim.calls if c.domain == portal.domain]
            limited = sum(1 for c in calls if c.error == "QUERY_LIMIT_EXCEEDED")
    minimum = max(0.0, (math.ceil(deals / 50) - X) / Y)
    floor = max(minimum, injected)
    naive = max(0.0, (events - X) / Y)
    name = f"storm_{workers}_worker{'s' if workers > 1 else ''}"
    report(
        "event_storm",
        f"{name}_wall",
        wall,
        "s",
        floor,
        "theoretical minimum for the limit (or the time to enqueue the storm, if longer)",
        target=1.15,
        deals=deals,
        events=events,
        requests=len(calls),
        query_limit_exceeded=limited,
        injected_s=round(injected, 1),
        limit_minimum_s=minimum,
    )
    report(
        "event_storm",
        f"{name}_vs_one_read_per_event",
        wall,
        "s",
        naive,
        "one read per event at the same limit (computed: (events - X) / Y)",
    )
    print(
        f"event_storm: {len(calls)} portal requests ({math.ceil(deals / 50)} at least), "
        f"{limited} answered QUERY_LIMIT_EXCEEDED, storm enqueued in {injected:.1f} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=4000)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=0, help="0: run with 1 and with 2 workers")
    args = parser.parse_args()
    for w in [args.workers] if args.workers else [1, 2]:
        run(args.deals, args.events, w)
