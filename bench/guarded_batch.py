"""A batch of guarded events (issue 14: the worker at Bitrix24's real pace): what the once-per-event
guard of handlers not declared idempotent costs in DynamoDB requests and time.

A batch of N (default 100) events of one portal, each to a guarded handler that writes one ctx.storage
item, runs through the production worker (``build_worker``) on DynamoDB Local, ``--batches`` times
(new events each time). Counted per batch: the requests that touch the guard's items (pk
IDEMPOTENCY#...) and those that write only the app's items, and the write request units of all of
them (a transaction's item costs two: atomicity is paid in WRUs); timed: the worker call.

The peer, measured in the same run on the same DynamoDB Local: the same batches through the worker of
another tree (``--old-tree``, e.g. a worktree of the commit before the guard ledger: Powertools'
idempotency, an INPROGRESS put and a COMPLETED update per event, the event's writes flushed between).
Without ``--old-tree`` the peer is computed: 2 guard requests and 1 write request per event.

Run: .venv/bin/python bench/guarded_batch.py [--events 100 --batches 5 --old-tree /tmp/guard-parent]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import ROOT, report  # noqa: E402

PATHS = ("layers/b24core", "local", "cli", "apps")


def child(events: int, batches: int) -> None:
    """Runs in a process whose PYTHONPATH is one tree; prints its figures as one JSON line."""
    from types import SimpleNamespace

    from b24core.entry import wiring
    from b24core.entry.worker import build_worker
    from b24core.events.message import QueuedEvent
    from b24core.portals.keys import IDEMPOTENCY_PK
    from b24core.portals.model import Portal
    from b24core.portals.states import PortalState
    from b24core.worker.handlers import Registry

    registry = Registry()
    registry.storage_factory = wiring.app_storage

    @registry.on("ONCRMDEALUPDATE")
    def count(event: Any, ctx: Any) -> None:
        ctx.storage.put(f"count/{event.object_id}", {"n": 1})

    built = build_worker(registry)
    worker, powertools = built if isinstance(built, tuple) else (built, None)
    context = SimpleNamespace(
        function_name="EventWorkerFunction",
        memory_limit_in_mb=256,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:EventWorkerFunction",
        aws_request_id="bench",
        get_remaining_time_in_millis=lambda: 60_000,
    )
    if powertools is not None:
        powertools.register_lambda_context(context)
    sent = {"guard": 0, "app": 0, "all": 0, "wru": 0}

    def count_request(params: Any, model: Any, **_: Any) -> None:
        text = json.dumps(params, default=str)
        sent["all"] += 1
        # Write request units (items under 1 KB): a transaction's item costs two (DynamoDB pricing).
        if model.name == "TransactWriteItems":
            sent["wru"] += 2 * len(params["TransactItems"])
        elif model.name == "BatchWriteItem":
            sent["wru"] += sum(len(v) for v in params["RequestItems"].values())
        elif model.name in ("PutItem", "UpdateItem", "DeleteItem"):
            sent["wru"] += 1
        if IDEMPOTENCY_PK in text:
            sent["guard"] += 1
        elif '"APP#' in text:
            sent["app"] += 1

    wiring.boto_client("dynamodb").meta.events.register("provide-client-params.dynamodb.*", count_request)
    rows = []
    for _ in range(batches + 1):  # the first one warms up (connections, imports) and is not counted
        member_id = uuid.uuid4().hex
        portal = Portal(member_id, "p", "https://p.example/rest/", state=PortalState.ACTIVE)
        wiring.portal_store().save(portal)
        records = [
            {
                "messageId": f"m-{d}",
                "receiptHandle": f"rh-{d}",
                "body": QueuedEvent(
                    "ONCRMDEALUPDATE", member_id, "p", data={"FIELDS": {"ID": str(d)}}, ts="1"
                ).to_json(),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
            for d in range(events)
        ]
        sent.update(guard=0, app=0, all=0, wru=0)
        started = time.perf_counter()
        result = worker({"Records": records}, context)
        wall = time.perf_counter() - started
        rows.append({"wall_s": wall, **sent})
        assert result["batchItemFailures"] == [], result
        stored = wiring.app_storage(member_id)
        assert all(stored.get(f"count/{d}") == {"n": 1} for d in range(0, events, 17))
    rows = rows[1:]
    print(
        json.dumps(
            {
                "wall_s": statistics.median(r["wall_s"] for r in rows),
                "guard": statistics.median(r["guard"] for r in rows),
                "app": statistics.median(r["app"] for r in rows),
                "all": statistics.median(r["all"] for r in rows),
                "wru": statistics.median(r["wru"] for r in rows),
            }
        )
    )


def run_tree(tree: Path, env: dict[str, str], events: int, batches: int) -> dict[str, float]:
    path = os.pathsep.join(str(tree / p) for p in PATHS)
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--events", str(events), "--batches", str(batches)],
        env={**env, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        cwd=tree,
    )
    if out.returncode:
        raise SystemExit(f"{tree}: {out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--old-tree", type=Path, default=None)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.events, args.batches)
        return
    from b24stack.services import LocalServices
    from b24stack.template import default_app

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    with LocalServices(in_memory=True) as services:
        resources = services.create_resources(ROOT / "template.yaml")
        env = {
            **os.environ,
            "TABLE_NAME": resources["AppTable"],
            "EVENTS_QUEUE_URL": resources["EventsQueue"],
            "AWS_ENDPOINT_URL_DYNAMODB": services.dynamodb_endpoint,
            "AWS_ENDPOINT_URL_SQS": services.moto_endpoint,
            "B24_APP": os.environ.get("B24_APP") or default_app(ROOT),
            "POWERTOOLS_METRICS_NAMESPACE": "bench",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        new = run_tree(ROOT, env, args.events, args.batches)
        old = run_tree(args.old_tree, env, args.events, args.batches) if args.old_tree else None
    n = args.events
    old_guard = old["guard"] / n if old else 2.0
    old_app = old["app"] / n if old else 1.0
    peer = f"Powertools guard ({'measured, ' + str(args.old_tree) if old else 'computed'})"
    print(f"guarded_batch: new {new}; old {old}")
    report(
        "guarded_batch",
        f"guard requests per event, batch of {n}",
        new["guard"] / n,
        "requests",
        old_guard,
        peer,
        events=n,
        batches=args.batches,
        app_only_requests_per_event=round(new["app"] / n, 3),
        old_app_only_requests_per_event=round(old_app, 3),
        all_requests_per_event=round(new["all"] / n, 3),
        old_all_requests_per_event=round(old["all"] / n, 3) if old else None,
        write_units_per_event=round(new["wru"] / n, 3),
        old_write_units_per_event=round(old["wru"] / n, 3) if old else None,
    )
    if old:
        report(
            "guarded_batch",
            f"wall time of a batch of {n} guarded events",
            new["wall_s"],
            "s",
            old["wall_s"],
            peer,
            events=n,
            batches=args.batches,
        )


if __name__ == "__main__":
    main()
