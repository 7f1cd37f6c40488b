"""Refresh overhead (issue: token custody).

The time from a portal's ``expired_token`` answer to the retried call's answer (PortalClient: lease,
consistent re-read, refresh at the auth server, version-checked save, lease release, the call again),
against the two things it cannot avoid, measured in the same run: the authorization server's own
latency (a direct refresh request) plus one plain REST call. Store: DynamoDB Local; portal and auth
server: the simulator, the auth server answering after 100 ms by default.

Run: .venv/bin/python bench/refresh_overhead.py [--rounds 30] [--latency-ms 100]
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
import uuid
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import fresh_table, installed_portal, local_services, median, report  # noqa: E402

CLIENT_ID = "bench.refresh"


def run(args: argparse.Namespace) -> None:
    import logging

    from b24core.aws.logs import logger
    from b24core.aws.metrics import record_metrics
    from b24core.aws.settings import TokenPolicy
    from b24core.bitrix.oauth import AuthServer
    from b24core.portals.store import DynamoPortalStore
    from b24core.tokens.client import PortalClient
    from b24core.tokens.keeper import TokenKeeper
    from b24core.tokens.lease import DynamoLeaseStore
    from b24core.tokens.outcomes import StaticSecret
    from b24sim import Simulator

    os.environ["B24_ALLOW_INSECURE_ENDPOINTS"] = "1"  # the simulator's portals live on 127.0.0.1
    logging.getLogger("b24sim").setLevel(logging.WARNING)
    logger.setLevel("WARNING")
    secret = secrets.token_hex(16)
    with local_services() as services, Simulator(CLIENT_ID, secret) as sim:
        table = fresh_table(services, "bench-refresh")
        store = DynamoPortalStore(table, services.region, services.dynamodb_endpoint)
        leases = DynamoLeaseStore(table, services.region, services.dynamodb_endpoint)
        auth = AuthServer(sim.oauth_url, 10.0)
        keeper = TokenKeeper(
            store, auth, CLIENT_ID, StaticSecret(secret), leases, TokenPolicy(), allow_insecure_endpoints=True
        )

        sim.oauth.latency_s = args.latency_ms / 1000
        now = int(time.time())
        record = store.save(installed_portal(sim, installed_at=now, refreshed_at=now))
        spare = []  # refresh tokens of other simulator portals, for the direct requests
        for _ in range(args.rounds):
            other = sim.add_portal(f"{uuid.uuid4().hex[:12]}.bitrix24.test")
            spare.append(sim.install_silently(other.domain)["refresh_token"])
        # Warm-up: connections and caches, as in a warm Lambda.
        client = PortalClient(record, keeper)
        client.call("server.time")
        recovery, direct, plain = [], [], []
        with record_metrics():
            for i in range(args.rounds):
                t0 = time.perf_counter()
                client.call("server.time")
                plain.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                auth.refresh(CLIENT_ID, secret, spare[i])
                direct.append(time.perf_counter() - t0)
                sim.expire_access_tokens(record.domain)
                client = PortalClient(store.get(record.member_id), keeper)
                client.call("server.time")
                assert client.last_recovery_s is not None
                recovery.append(client.last_recovery_s)
        floor = median(direct) + median(plain)
        common = {"rounds": args.rounds, "latency_ms": args.latency_ms}
        report(
            "refresh_overhead",
            "expired_token -> retried call answered (median)",
            median(recovery) * 1000,
            "ms",
            floor * 1000,
            "auth server refresh + one REST call (median)",
            target=1.5,
            auth_server_ms=round(median(direct) * 1000, 2),
            rest_call_ms=round(median(plain) * 1000, 2),
            p90_ms=round(sorted(recovery)[int(len(recovery) * 0.9) - 1] * 1000, 2),
            **common,
        )
        report(
            "refresh_overhead",
            "custody overhead (lease, re-read, save, release; median)",
            max(0.0, median(recovery) - floor) * 1000,
            "ms",
            median(direct) * 1000,
            "auth server refresh (median)",
            **common,
        )
        refreshes = [r for r in sim.oauth.requests if r.kind == "token" and r.member_id == record.member_id]
        if len(refreshes) != args.rounds or any(r.outcome != "ok" for r in refreshes):
            raise SystemExit(f"expected {args.rounds} good refreshes, saw {[r.outcome for r in refreshes]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
