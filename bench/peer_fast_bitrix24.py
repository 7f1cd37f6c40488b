"""Peer for the storm benchmark: fast_bitrix24 (PyPI) reads deals by id from the simulator.

The event storm's worker reads 4,000 changed deals 50 per ``batch`` call within a cloud portal's limit
(leaky bucket: X = 50 requests, drained Y per second). fast_bitrix24 is the popular Python client that does
the same job from a plain list of ids: ``get_by_ID("crm.deal.get", ids)`` packs 50 reads into each
``batch`` call, runs up to 50 of them at once and throttles itself with its own leaky bucket, told the
portal's X (``request_pool_size``) and Y (``requests_per_second``). Run against a simulator portal with the
same limit, it shows what a well-known client achieves on the bare read, without queues or a table.

``--time-scale k`` stretches the portal's drain: Y = 2 / k (k = 10 is a bucket that drains ten times
slower). The theoretical minimum for a reader of 50 deals per request is
max(0, (ceil(N / 50) - X) / Y): the bucket takes X requests at once, then Y per second.

What 1.8.14 does here: its bucket counts a request when the answer arrives, so with 50 requests in
flight it lets the next 30 go at once; the portal answers 503 QUERY_LIMIT_EXCEEDED, and its retry
budget (more than 10 failures in a row, counted across all concurrent requests) is spent by that one
burst: it gives up with nothing read. Inside its documented remedy ``slow(1)`` (``--slow 1``) it
stays within the limit. It takes http:// webhooks as they are (its ``ssl`` flag only matters for https).

The webhook URL carries its code (a secret): it is never printed, and error texts are stripped of it.

Run: .venv/bin/python bench/peer_fast_bitrix24.py [--deals 4000 --time-scale 1 --slow 0]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import math
import secrets
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import report  # noqa: E402

from b24sim import Simulator  # noqa: E402

X = 50
BASE_Y = 2.0
BATCH = 50

#: How fast_bitrix24 1.8.x words its DEBUG records (the only account it gives of its own work).
_CLIENT_RECORDS = {
    "Requesting ": "attempts",  # one per HTTP request it sends, retries included
    "Delaying request": "backoff_sleeps",  # a sleep after failures, before the next attempt
    "Concurrent requests decreased": "concurrency_cuts",  # its autothrottle after failures
}


class _ClientRecords(logging.Handler):
    """Counts fast_bitrix24's DEBUG records by kind; prints nothing (they hold request parameters)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.msg if isinstance(record.msg, str) else ""  # unformatted: no payload rendering
        for prefix, kind in _CLIENT_RECORDS.items():
            if text.startswith(prefix):
                self.counts[kind] += 1


def _redact(text: str, webhook_url: str) -> str:
    """Error texts of aiohttp quote the request URL, whose path holds the webhook's code."""
    code = webhook_url.rstrip("/").rsplit("/", 1)[-1]
    return text.replace(code, "***") if code else text


def _describe(err: BaseException, webhook_url: str) -> str:
    parts, seen = [], 0
    current: BaseException | None = err
    while current is not None and seen < 5:
        parts.append(f"{type(current).__name__}: {current}")
        current, seen = current.__cause__ or current.__context__, seen + 1
    return _redact(" <- ".join(parts), webhook_url)


async def _get_by_id(client: Any, deal_ids: list[int], max_concurrent: int | None, orphans: list[str]) -> Any:
    # When one batch gives up, get_by_ID raises and leaves its other batch tasks to fail unobserved;
    # asyncio's default handler would print their tracebacks, whose aiohttp errors quote the webhook
    # URL. Collect them instead (redacted by the caller).
    def keep(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        err = context.get("exception")
        orphans.append(f"{type(err).__name__}: {err}" if err else str(context.get("message")))

    asyncio.get_running_loop().set_exception_handler(keep)
    if max_concurrent is None:
        return await client.get_by_ID("crm.deal.get", deal_ids)
    with client.slow(max_concurrent):  # the client's documented remedy for server errors under load
        return await client.get_by_ID("crm.deal.get", deal_ids)


def read_with_fast_bitrix24(
    webhook_url: str,
    deal_ids: list[int],
    requests_per_second: float,
    pool_size: int,
    max_concurrent: int | None = None,
) -> dict[str, Any]:
    """Read every deal by id with fast_bitrix24, throttled to the portal's X (pool) and Y (per second).

    ``max_concurrent`` runs the read inside the client's ``slow(max_concurrent)``; ``None`` keeps its
    default (up to 50 requests in flight). Returns the wall seconds of the whole ``get_by_ID`` call, how
    many deals came back complete, and what the client tells about itself: the attempts it sent (from
    its DEBUG log), backoff sleeps and concurrency cuts after failures, the concurrency it ended with,
    the error it gave up with and the errors of batch tasks it left behind.
    """
    from fast_bitrix24 import BitrixAsync

    client_log = logging.getLogger("fast_bitrix24")
    records = _ClientRecords()
    client_log.addHandler(records)
    client = BitrixAsync(
        webhook_url,
        verbose=False,  # no tqdm progress bar
        request_pool_size=int(pool_size),
        requests_per_second=float(requests_per_second),
        batch_size=BATCH,
    )
    results: Any = {}
    error = None
    orphans: list[str] = []
    t0 = time.monotonic()
    try:
        results = asyncio.run(_get_by_id(client, list(deal_ids), max_concurrent, orphans))
    except Exception as err:
        error = _describe(err, webhook_url)
    finally:
        wall = time.monotonic() - t0
        client_log.removeHandler(records)
    gc.collect()  # unobserved task errors are reported when the tasks are collected
    found = results if isinstance(results, dict) else {}
    read = sum(
        1
        for deal_id in deal_ids
        if isinstance(found.get(str(deal_id)), dict) and found[str(deal_id)].get("ID") == str(deal_id)
    )
    batches = math.ceil(len(deal_ids) / BATCH)
    return {
        "wall_s": wall,
        "deals_read": read,
        "client_max_concurrent": max_concurrent,
        "client_batches": batches,
        "client_attempts": records.counts["attempts"],
        "client_retries": max(0, records.counts["attempts"] - batches),
        "client_backoff_sleeps": records.counts["backoff_sleeps"],
        "client_concurrency_cuts": records.counts["concurrency_cuts"],
        "client_final_concurrency": round(float(client.srh.mcr_cur_limit), 2),
        "client_error": error,
        "client_orphaned_task_errors": dict(Counter(_redact(o, webhook_url) for o in orphans)),
    }


def run(deals: int, time_scale: float, max_concurrent: int | None) -> None:
    y = BASE_Y / time_scale
    with Simulator("bench.peer", secrets.token_hex(16)) as sim:
        portal = sim.add_portal(profile="cloud", rate=(X, y))
        now = time.time()
        ids = [portal.deals.add({"TITLE": f"v1-{i}"}, 1, now) for i in range(deals)]
        webhook = portal.add_incoming_webhook(["crm"])
        sim.calls.clear()
        out = read_with_fast_bitrix24(webhook, ids, y, X, max_concurrent)
        calls = sim.calls_for(portal.domain)
    limited = sum(1 for c in calls if c.error == "QUERY_LIMIT_EXCEEDED")
    other_errors = Counter(c.error for c in calls if c.error and c.error != "QUERY_LIMIT_EXCEEDED")
    needed = math.ceil(deals / BATCH)
    minimum = max(0.0, (needed - X) / y)
    complete = out["deals_read"] == deals and out["client_error"] is None
    mode = f"_slow{max_concurrent}" if max_concurrent else ""
    # A run that gave up is no wall time to compare: its name says so.
    report(
        "peer_fast_bitrix24",
        f"fast_bitrix24_get_by_id{mode}_k{time_scale:g}_{'wall' if complete else 'gave_up_after'}",
        out["wall_s"],
        "s",
        minimum,
        f"theoretical minimum for the limit ((ceil(N/50) - {X}) / Y, Y = {y:g}/s)",
        deals=deals,
        time_scale=time_scale,
        rate=[X, y],
        complete=complete,
        requests=len(calls),
        query_limit_exceeded=limited,
        other_errors=dict(other_errors),
        limit_minimum_s=minimum,
        **{k: v for k, v in out.items() if k != "wall_s"},
    )
    print(
        f"peer_fast_bitrix24: wall {out['wall_s']:.1f} s, {out['deals_read']}/{deals} deals read; "
        f"the simulator saw {len(calls)} portal requests ({needed} at least), "
        f"{limited} answered QUERY_LIMIT_EXCEEDED"
        + (f", other errors {dict(other_errors)}" if other_errors else "")
        + f"; theoretical minimum {minimum:.1f} s (X={X}, Y={y:g}/s)"
    )
    print(
        f"peer_fast_bitrix24: client sent {out['client_attempts']} requests for {out['client_batches']} "
        f"batches ({out['client_retries']} retries), {out['client_backoff_sleeps']} backoff sleeps, "
        f"{out['client_concurrency_cuts']} concurrency cuts, ended at concurrency "
        f"{out['client_final_concurrency']:g}"
    )
    if not complete:
        left = sum(out["client_orphaned_task_errors"].values())
        print(
            f"peer_fast_bitrix24: INCOMPLETE, the client gave up: {out['client_error'] or 'deals missing'}"
            f" ({left} more batch tasks failed unobserved)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=4000)
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="k: the portal drains Y = 2/k requests per second"
    )
    parser.add_argument(
        "--slow",
        type=int,
        default=0,
        metavar="N",
        help="read inside the client's slow(N) (at most N requests in flight); 0: its default",
    )
    args = parser.parse_args()
    if args.deals < 1 or args.time_scale <= 0 or args.slow < 0:
        parser.error("--deals must be >= 1, --time-scale > 0, --slow >= 0")
    run(args.deals, args.time_scale, args.slow or None)
