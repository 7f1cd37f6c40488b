"""Steady traffic (issue 14): what one event costs the worker when events trickle in from many portals.

The cost model's steady-traffic lines (DynamoDB read and write units, REST requests per event) were
counted by hand along the worker's code path; this bench measures them. The whole local stack of
template.yaml runs (intake, queue, worker, DynamoDB Local, moto SQS) against the Bitrix24 simulator:
``--portals`` portals (default 20) are installed through the install frame, each gets a few deals made
without events beforehand, then ``--events`` changes (default 300: nine in ten a deal edited, one in ten a
deal added) are made in random portals at ``--rate`` changes a second (default 3). Each change is made
in the simulator first, which posts its event to the intake (EventsFunction, over HTTP, form-encoded as
Bitrix24 sends it). The queue has ``--pollers`` pollers (5, as Lambda's SQS event source starts), each
gathering for the template's batching window, so a worker invocation holds about rate x window / pollers
events, as in AWS. The run ends when the example app's mirror holds the latest version of every deal.

Counted for the events only (installs and the deals made before are not): every AWS call the worker
and the intake make (b24stack.aws_calls: service, operation, items touched, consistent or not), the
portals' REST requests (the simulator's call log), the worker's invocations and busy time (its REPORT
lines; GB-s with the template's MemorySize).

Request units are estimated from the item counts as DynamoDB on-demand bills them, assuming every item
read is at most 4 KB and every item written at most 1 KB: a strongly consistent read 1 RRU, an
eventually consistent one 0.5, a write 1 WRU, an item of a transaction twice that; a Query or Scan is
counted as one item (its count is in its answer, which is not recorded - the worker's event path makes
none). After the run the table is scanned and the largest item of each kind is printed with its size
by DynamoDB's rules, so a reader sees whether the assumption holds (an item over the limit costs one
unit more per 1 KB/4 KB started).

Printed against floors: one DynamoDB request per event, the cost model's former assumptions (3 read
and 5 write units per event), one REST read per event. Appends a line ``"bench": "steady_traffic"`` to
bench/results/steady_traffic.jsonl (``dynamodb_read_units_per_event``, ``dynamodb_write_units_per_event``,
``dynamodb_requests_per_event``, ``rest_requests_per_event``, ``worker_busy_s_per_event``, ...): the
cost model (bench/cost_inputs.py) takes the newest.

Run: .venv/bin/python bench/steady_traffic.py [--portals 20 --events 300 --rate 3 --pollers 5]
"""

from __future__ import annotations

import argparse
import math
import os
import random
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
from event_storm import _aws_calls, _queued, _reports  # noqa: E402

from b24sim import Simulator  # noqa: E402
from b24stack.aws_calls import ENV_VAR as AWS_CALLS_ENV  # noqa: E402
from b24stack.procs import free_port  # noqa: E402
from b24stack.stack import LocalStack  # noqa: E402

DEALS_PER_PORTAL = 10
WAIT_S = 180  # for the mirror to be current once the last change is sent
KEEP_LOGS = ""  # --keep-logs DIR: the stack's logs and recorded calls when the mirror does not catch up
ADD_SHARE = 0.1
ASSUMED_READ_UNITS, ASSUMED_WRITE_UNITS = 3.0, 5.0  # the cost model's former steady-traffic assumptions
READS = ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems")
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


def units(calls: list[dict[str, Any]]) -> tuple[float, float]:
    """(read request units, write request units) of these recorded DynamoDB calls, items at most
    4 KB read and 1 KB written (see the module's docstring)."""
    read = write = 0.0
    for call in calls:
        op, items = call["operation"], int(call.get("Items") or 1)
        if op == "TransactGetItems":
            read += 2 * items
        elif op in READS:
            read += items * (1.0 if call.get("Consistent") else 0.5)
        elif op == "TransactWriteItems":
            write += 2 * items
        elif op in WRITES:
            write += items
    return read, write


def item_size(item: dict[str, Any]) -> int:
    """An item's size by DynamoDB's rules: attribute names plus values (numbers about a byte per two
    digits, maps and lists 3 bytes plus a byte per element)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    ((kind, v),) = value.items()
    if kind == "S":
        return len(str(v).encode())
    if kind == "N":
        return len(str(v).strip("-").replace(".", "").lstrip("0")) // 2 + 1
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: x}) for x in v)
    if kind == "L":
        return 3 + sum(1 + _value_size(x) for x in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(x) for k, x in v.items())
    return 0


def _kind(item: dict[str, Any]) -> str:
    """An item's kind from its key, ids left out: ``PORTAL RATE``, ``APP deal``, ..."""
    pk = str(item.get("pk", {}).get("S", "?")).split("#", 1)[0]
    sk = str(item.get("sk", {}).get("S", "?"))
    head = sk.replace("/", "#").split("#", 1)[0]
    return f"{pk} {''.join('N' if c.isdigit() else c for c in head)}"


def largest_items(ddb: Any, table: str) -> dict[str, int]:
    """The largest item of each kind in the table, in bytes."""
    out: dict[str, int] = {}
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        for item in page.get("Items", []):
            kind, size = _kind(item), item_size(item)
            out[kind] = max(out.get(kind, 0), size)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def mirror_behind(ddb: Any, table: str, want: dict[str, dict[str, str]]) -> int:
    """How many deals the mirror (the example app's storage) does not yet hold in their latest version."""
    from b24core.portals.app_data import DynamoAppStorage

    behind = 0
    for member_id, deals in want.items():
        have = {
            key.removeprefix("deal/"): deal.get("TITLE")
            for key, deal in DynamoAppStorage(ddb, table, member_id).items("deal/")
            if "/history/" not in key
        }
        behind += sum(1 for deal_id, title in deals.items() if have.get(deal_id) != title)
    return behind


def run(portals: int, events: int, rate: float, pollers: int) -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    rng = random.Random(14)
    port = free_port()
    with Simulator("bench.app", secrets.token_hex(16)) as sim, tempfile.TemporaryDirectory() as state:
        env = {
            "B24_PUBLIC_URL": f"http://127.0.0.1:{port}",  # what the install binds the events to
            "B24_CLIENT_ID": "bench.app",
            "B24_CLIENT_SECRET": sim._client_secret,
            "B24_OAUTH_URL": sim.oauth_url,
            "B24_ALLOW_INSECURE_ENDPOINTS": "1",
            AWS_CALLS_ENV: str(Path(state) / "aws-calls"),
            # The functions' processes start as ``python -m b24stack.lambda_env``: this tree's b24stack
            # (the recorder with item counts), not whichever one the interpreter has installed.
            "PYTHONPATH": str(ROOT / "local"),
        }
        with LocalStack(
            ROOT,
            port=port,
            state_dir=Path(state),
            in_memory=True,
            env_overrides=env,
            schedules=False,
            pollers_per_queue=pollers,
        ) as stack:
            sites = [sim.add_portal(profile="cloud") for _ in range(portals)]
            for portal in sites:
                assert (
                    sim.install(portal.domain, f"{stack.gateway_url}/install", mode="ui").status_code == 200
                )
            # Deals that exist before the run, made without events: the run's edits are then of deals
            # the mirror has never seen as well as of deals it has (after their first edit).
            now = time.time()
            deals = {
                p.member_id: [p.deals.add({"TITLE": "v0"}, 1, now) for _ in range(DEALS_PER_PORTAL)]
                for p in sites
            }
            stack.wait_idle(120)
            sim.wait_idle(30)
            ddb, sqs = stack.client("dynamodb"), stack.client("sqs")
            table, queue = stack.resources["AppTable"], stack.resources["EventsQueue"]
            calls_dir = Path(state) / "aws-calls"
            logs = {name: calls_dir / f"{name}.jsonl" for name in ("EventWorkerFunction", "EventsFunction")}
            before = {name: len(_aws_calls(path)) for name, path in logs.items()}
            worker_log = stack.logs_dir / "EventWorkerFunction.log"
            intake_log = stack.logs_dir / "EventsFunction.log"
            reports_before = (len(_reports(worker_log)), len(_reports(intake_log)))
            sim.calls.clear()
            want: dict[str, dict[str, str]] = {p.member_id: {} for p in sites}
            t0 = time.monotonic()
            for n in range(events):
                # A steady pace: change n is made at t0 + n / rate, whatever the one before cost.
                time.sleep(max(0.0, t0 + n / rate - time.monotonic()))
                portal = rng.choice(sites)
                title = f"v{n + 1}"
                if rng.random() < ADD_SHARE:
                    deal_id = portal.ui_deal_add({"TITLE": title})
                    deals[portal.member_id].append(deal_id)
                else:
                    deal_id = rng.choice(deals[portal.member_id])
                    portal.ui_deal_update(deal_id, {"TITLE": title})
                want[portal.member_id][str(deal_id)] = title
            sent = time.monotonic() - t0
            sim.wait_idle(60)
            deadline = time.monotonic() + WAIT_S
            while (behind := mirror_behind(ddb, table, want)) or _queued(sqs, queue):
                if time.monotonic() > deadline:
                    if KEEP_LOGS:
                        shutil.copytree(stack.logs_dir, KEEP_LOGS, dirs_exist_ok=True)
                        shutil.copytree(calls_dir, Path(KEEP_LOGS) / "aws-calls", dirs_exist_ok=True)
                    raise SystemExit(f"steady_traffic: the mirror is {behind} deals behind after {WAIT_S} s")
                time.sleep(1.0)
            wall = time.monotonic() - t0
            worker = _aws_calls(logs["EventWorkerFunction"])[before["EventWorkerFunction"] :]
            intake = _aws_calls(logs["EventsFunction"])[before["EventsFunction"] :]
            invocations = _reports(worker_log)[reports_before[0] :]
            intake_invocations = _reports(intake_log)[reports_before[1] :]
            member_domains = {p.domain for p in sites}
            rest = [c for c in sim.calls if c.domain in member_domains]
            delivered = sum(
                1 for p in sites for d in sim.deliveries_for(p.domain) if d.event.startswith("ONCRMDEAL")
            )
            sizes = largest_items(ddb, table)
    summarize(
        portals,
        events,
        rate,
        pollers,
        wall,
        sent,
        worker,
        intake,
        invocations,
        intake_invocations,
        rest,
        sizes,
    )
    if delivered < events:
        print(f"steady_traffic: only {delivered} of {events} events were delivered to the intake")


def summarize(
    portals: int,
    events: int,
    rate: float,
    pollers: int,
    wall: float,
    sent: float,
    worker: list[dict[str, Any]],
    intake: list[dict[str, Any]],
    invocations: list[tuple[float, int]],
    intake_invocations: list[tuple[float, int]],
    rest: list[Any],
    sizes: dict[str, int],
) -> None:
    ddb = [c for c in worker if c["service"] == "dynamodb"]
    uncounted = [c for c in ddb + intake if "Items" not in c and c["operation"] not in ("Query", "Scan")]
    if [c for c in uncounted if c["service"] == "dynamodb"]:
        # The functions imported another tree's b24stack (one without item counts): units would be wrong.
        raise SystemExit("steady_traffic: the functions recorded DynamoDB calls without item counts")
    intake_ddb = [c for c in intake if c["service"] == "dynamodb"]
    read_units, write_units = units(ddb)
    intake_read, intake_write = units(intake_ddb)
    operations = dict(Counter(f"{c['service']}.{c['operation']}" for c in worker))
    intake_operations = dict(Counter(f"{c['service']}.{c['operation']}" for c in intake))
    ddb_items = Counter()
    for c in ddb:
        ddb_items[c["operation"] + (" consistent" if c.get("Consistent") else "")] += int(c.get("Items") or 1)
    busy_s = sum(ms for ms, _ in invocations) / 1000
    memory_mb = max((mb for _, mb in invocations), default=0)
    intake_busy_s = sum(ms for ms, _ in intake_invocations) / 1000
    sqs = sum(1 for c in worker if c["service"] == "sqs")
    methods = dict(Counter(c.method for c in rest))
    limited = sum(1 for c in rest if c.error == "QUERY_LIMIT_EXCEEDED")
    common = {"events": events, "portals": portals, "rate_per_s": rate}
    per = 1 / events
    report(
        "steady_traffic",
        "dynamodb_requests_per_event",
        len(ddb) * per,
        "requests/event",
        1.0,
        "one DynamoDB request per event",
        dynamodb_requests=len(ddb),
        **common,
    )
    report(
        "steady_traffic",
        "dynamodb_read_units_per_event",
        read_units * per,
        "RRU/event",
        ASSUMED_READ_UNITS,
        "the cost model's former assumption (portal record, limiter level, read marks)",
        **common,
    )
    report(
        "steady_traffic",
        "dynamodb_write_units_per_event",
        write_units * per,
        "WRU/event",
        ASSUMED_WRITE_UNITS,
        "the cost model's former assumption (limiter, deal + history, read mark, seen mark)",
        **common,
    )
    report(
        "steady_traffic",
        "rest_requests_per_event",
        len(rest) * per,
        "requests/event",
        1.0,
        "one REST read per event",
        query_limit_exceeded=limited,
        methods=methods,
        **common,
    )
    record(
        "steady_traffic",
        date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **common,
        pollers=pollers,
        wall_s=round(wall, 1),
        send_s=round(sent, 1),
        dynamodb_requests=len(ddb),
        dynamodb_requests_per_event=round(len(ddb) * per, 4),
        dynamodb_read_units_per_event=round(read_units * per, 4),
        dynamodb_write_units_per_event=round(write_units * per, 4),
        dynamodb_items=dict(ddb_items),
        sqs_requests=sqs,
        sqs_requests_per_event=round(sqs * per, 4),
        rest_requests=len(rest),
        rest_requests_per_event=round(len(rest) * per, 4),
        query_limit_exceeded=limited,
        methods=methods,
        operations=operations,
        worker_invocations=len(invocations),
        events_per_invocation=round(events / max(1, len(invocations)), 2),
        worker_busy_s=round(busy_s, 2),
        worker_busy_s_per_event=round(busy_s * per, 4),
        memory_mb=memory_mb,
        worker_gb_s_per_event=round(busy_s * per * memory_mb / 1024, 5),
        intake_operations=intake_operations,
        intake_dynamodb_read_units_per_event=round(intake_read * per, 4),
        intake_dynamodb_write_units_per_event=round(intake_write * per, 4),
        intake_invocations=len(intake_invocations),
        intake_busy_s_per_event=round(intake_busy_s * per, 4),
        largest_item_bytes=sizes,
        item_size_assumption="reads <= 4 KB, writes <= 1 KB",
    )
    print(f"steady_traffic: the worker's AWS requests by operation: {operations}")
    print(f"steady_traffic: DynamoDB items touched by the worker: {dict(ddb_items)}")
    print(f"steady_traffic: the intake's AWS requests: {intake_operations}")
    print(
        f"steady_traffic: {len(invocations)} worker invocations ({events / max(1, len(invocations)):.1f} "
        f"events each), {busy_s:.1f} s busy ({busy_s * per * 1000:.1f} ms/event, "
        f"{busy_s * memory_mb / 1024 * per:.5f} GB-s/event at {memory_mb} MB); intake "
        f"{intake_busy_s * per * 1000:.1f} ms/event; REST methods {methods}, {limited} QUERY_LIMIT_EXCEEDED"
    )
    print(f"steady_traffic: {events} changes sent in {sent:.1f} s, mirror current after {wall:.1f} s")
    over = {k: v for k, v in sizes.items() if v > 1024}
    print(
        "steady_traffic: largest item of each kind (bytes): "
        + ", ".join(f"{k} {v}" for k, v in sizes.items())
        + (
            "; over 1 KB (a write of it costs "
            + ", ".join(f"{k} {math.ceil(v / 1024)}" for k, v in over.items())
            + " WRU)"
            if over
            else "; all under 1 KB"
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portals", type=int, default=20)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rate", type=float, default=3.0, help="changes a second, over random portals")
    parser.add_argument(
        "--pollers", type=int, default=5, help="the queue's pollers (Lambda's SQS event source starts with 5)"
    )
    parser.add_argument("--keep-logs", default="", help="copy the stack's logs here if the run fails")
    parser.add_argument("--wait", type=int, default=WAIT_S, help="seconds the mirror may take at the end")
    args = parser.parse_args()
    KEEP_LOGS, WAIT_S = args.keep_logs, args.wait
    run(args.portals, args.events, args.rate, args.pollers)
