"""Keep-alive sweep cost (issue: token custody).

A table of N portals (default 100,000) in DynamoDB Local, 2% of them due for a keep-alive refresh; the
due ones are real simulator portals whose auth server answers after 100 ms. The sweep runs as
TokenRefreshFunction runs it (b24core.tokens.sweep.Sweep: gsi1 Queries, bounded concurrency, a global rate
cap, a lease per refresh).

1. Items read to find the due portals vs the number due (target <= 1.05x), with the Scan count (0).
2. Wall time of the due refreshes vs the floor the rate cap allows (due / cap), and the achieved
   refresh rate vs the cap. The full run uses a raised cap (default 40/s) so 2,000 refreshes take
   about a minute; a second, smaller run checks the default cap of 5/s.

Run: .venv/bin/python bench/token_sweep.py [--portals 100000] [--due-pct 2] [--cap 40] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import fresh_table, installed_portal, local_services, put_portals, report  # noqa: E402

DAY = 24 * 3600
CLIENT_ID = "bench.tokens"


class Ops:
    """DynamoDB calls of one botocore client: count per operation, items read by Query/Scan."""

    def __init__(self) -> None:
        self.ops: Counter[str] = Counter()
        self.scanned = 0
        self.lock = threading.Lock()

    def __call__(self, model: Any = None, parsed: Any = None, **_: Any) -> None:
        with self.lock:
            self.ops[model.name] += 1
            if isinstance(parsed, dict) and "ScannedCount" in parsed:
                self.scanned += int(parsed["ScannedCount"])

    def reset(self) -> None:
        with self.lock:
            self.ops.clear()
            self.scanned = 0


def seed(sim: Any, store: Any, total: int, due: int, now: int) -> float:
    """Write ``total`` portal records (``due`` of them real simulator portals due for keep-alive)."""
    from b24core.portals.model import Portal
    from b24core.portals.states import PortalState

    rng = random.Random(7)
    records: list[Portal] = []
    for _ in range(due):
        records.append(
            installed_portal(
                sim,
                user_id="1",
                installed_at=now - 200 * DAY,
                refreshed_at=now - 31 * DAY - rng.randint(0, 20 * DAY),
            )
        )
    for i in range(total - due):
        member = f"{i:08d}{uuid.uuid4().hex[:24]}"
        records.append(
            Portal(
                member_id=member,
                domain=f"p{i}.bitrix24.test",
                client_endpoint=f"https://p{i}.bitrix24.test/rest/",
                state=PortalState.ACTIVE,
                access_token=f"bench-access-{i}",
                refresh_token=f"bench-refresh-{i}",
                application_token=f"bench-app-{i}",
                installed_at=now - 200 * DAY,
                # Refreshed within the last 27 days: never due, even with two days of jitter.
                refreshed_at=now - rng.randint(0, 27 * DAY),
            )
        )
    rng.shuffle(records)
    return put_portals(store, records)


def run(args: argparse.Namespace) -> None:
    import logging

    from b24core.aws.metrics import record_metrics
    from b24core.aws.settings import TokenPolicy
    from b24core.bitrix.oauth import AuthServer
    from b24core.portals.store import DynamoPortalStore
    from b24core.tokens.keeper import TokenKeeper
    from b24core.tokens.lease import DynamoLeaseStore
    from b24core.tokens.outcomes import StaticSecret
    from b24core.tokens.sweep import AuthPace, Sweep
    from b24sim import Simulator

    logging.getLogger("b24sim").setLevel(logging.WARNING)
    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    from b24core.aws.logs import logger

    logger.setLevel("WARNING")
    secret = secrets.token_hex(16)
    due = max(1, round(args.portals * args.due_pct / 100))
    with local_services() as services, Simulator(CLIENT_ID, secret) as sim:
        table = fresh_table(services, "bench-tokens")
        region, endpoint = services.region, services.dynamodb_endpoint
        store = DynamoPortalStore(table, region, endpoint)
        leases = DynamoLeaseStore(table, region, endpoint)
        now = int(time.time())
        sample = 50
        load_s = seed(sim, store, args.portals + sample, due + sample, now)
        print(
            f"token_sweep: loaded {args.portals + sample:,} portals ({due + sample:,} due) in {load_s:.1f} s"
        )
        # The auth server's own latency, measured: direct refreshes of spare simulator portals.
        sim.oauth.latency_s = args.latency_ms / 1000
        auth = AuthServer(sim.oauth_url, 10.0)
        direct = []
        for _ in range(10):
            p = sim.add_portal(f"{uuid.uuid4().hex[:12]}.bitrix24.test")
            t = sim.install_silently(p.domain)
            t0 = time.perf_counter()
            auth.refresh(CLIENT_ID, secret, t["refresh_token"])
            direct.append(time.perf_counter() - t0)
        auth_latency = sorted(direct)[len(direct) // 2]

        ops = Ops()
        store._model._get_connection().connection.client.meta.events.register("after-call.dynamodb", ops)
        policy = replace(TokenPolicy(), sweep_concurrency=args.concurrency, auth_rate_per_s=args.cap)
        keeper = TokenKeeper(
            store, auth, CLIENT_ID, StaticSecret(secret), leases, policy, allow_insecure_endpoints=True
        )
        # A pass at the default cap first, over a sample of the due portals (max_portals).
        default = replace(policy, sweep_concurrency=4, auth_rate_per_s=5.0)
        sweep5 = Sweep(store, keeper, leases, default, limiter=AuthPace(5.0))
        t0 = time.perf_counter()
        with record_metrics():
            small = sweep5.run(max_portals=sample)
        small_s = time.perf_counter() - t0
        ops.reset()
        sweep = Sweep(store, keeper, leases, policy, limiter=AuthPace(args.cap))
        t0 = time.perf_counter()
        with record_metrics() as recorded:
            full = sweep.run()
        wall = time.perf_counter() - t0
        assert ops.ops["Scan"] == 0, "the sweep must never Scan"
        common = {
            "portals": args.portals,
            "due": due,
            "latency_ms": args.latency_ms,
            "cap_per_s": args.cap,
            "concurrency": args.concurrency,
            "load_s": round(load_s, 1),
        }
        report(
            "token_sweep",
            "items read by the sweep's index queries",
            float(ops.scanned),
            "items",
            float(due),
            "portals due",
            target=1.05,
            queries=ops.ops["Query"],
            scans=ops.ops["Scan"],
            get_items=ops.ops["GetItem"],
            refreshed=full.refreshed,
            **common,
        )
        floor = due / args.cap
        report(
            "token_sweep",
            f"wall time of {due:,} keep-alive refreshes",
            wall,
            "s",
            floor,
            f"due / cap ({args.cap:g}/s)",
            refreshed=full.refreshed,
            outcomes=dict(full.outcomes),
            auth_latency_ms=round(auth_latency * 1000, 1),
            tokens_refreshed_metric=recorded.total("TokensRefreshed"),
            **common,
        )
        report(
            "token_sweep",
            "achieved refresh rate",
            full.refreshed / wall,
            "refreshes/s",
            float(args.cap),
            "the rate cap",
            target=1.0,
            **common,
        )
        report(
            "token_sweep",
            "achieved refresh rate at the default cap (sample)",
            small.refreshed / small_s,
            "refreshes/s",
            5.0,
            "the default cap",
            target=1.0,
            sample=sample,
            refreshed=small.refreshed,
            **common,
        )
        print(
            f"token_sweep: {full.refreshed:,} refreshed in {wall:.1f} s with {ops.ops['Query']} queries, "
            f"{ops.ops['Scan']} scans, {ops.ops['GetItem']} consistent reads; auth server latency "
            f"{auth_latency * 1000:.0f} ms"
        )
        if full.refreshed != due or small.refreshed != sample:
            raise SystemExit(f"expected {due} + {sample} refreshes, got {full.refreshed} + {small.refreshed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--portals", type=int, default=100_000)
    parser.add_argument("--due-pct", type=float, default=2.0)
    parser.add_argument("--cap", type=float, default=40.0, help="auth server requests per second")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
