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
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import ROOT, median, report  # noqa: E402

CLIENT_ID = "bench.refresh"


def fresh_table(services: Any) -> str:
    from b24stack.intrinsics import Resolver
    from b24stack.template import load_template

    tmpl = load_template(ROOT / "template.yaml")
    props = Resolver(tmpl, region=services.region, environ=dict(os.environ)).resolve(
        tmpl.properties("AppTable")
    )
    name = f"bench-refresh-{uuid.uuid4().hex[:8]}"
    services.client("dynamodb").create_table(
        TableName=name,
        KeySchema=props["KeySchema"],
        AttributeDefinitions=props["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
            for g in props["GlobalSecondaryIndexes"]
        ],
    )
    return name


def run(args: argparse.Namespace) -> None:
    import logging

    from b24core.aws.logs import logger
    from b24core.aws.metrics import record_metrics
    from b24core.aws.settings import TokenPolicy
    from b24core.bitrix.oauth import AuthServer
    from b24core.portals.model import Portal
    from b24core.portals.states import PortalState
    from b24core.portals.store import DynamoPortalStore
    from b24core.tokens.client import PortalClient
    from b24core.tokens.keeper import TokenKeeper
    from b24core.tokens.lease import DynamoLeaseStore
    from b24core.tokens.outcomes import StaticSecret
    from b24sim import Simulator
    from b24stack.services import LocalServices

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    logging.getLogger("b24sim").setLevel(logging.WARNING)
    logger.setLevel("WARNING")
    secret = secrets.token_hex(16)
    with LocalServices(in_memory=True) as services, Simulator(CLIENT_ID, secret) as sim:
        table = fresh_table(services)
        store = DynamoPortalStore(table, services.region, services.dynamodb_endpoint)
        leases = DynamoLeaseStore(table, services.region, services.dynamodb_endpoint)
        auth = AuthServer(sim.oauth_url, 10.0)
        keeper = TokenKeeper(
            store, auth, CLIENT_ID, StaticSecret(secret), leases, TokenPolicy(), allow_insecure_endpoints=True
        )

        def install() -> tuple[Any, Portal]:
            p = sim.add_portal(f"{uuid.uuid4().hex[:12]}.bitrix24.test", rate=(1e6, 1e6))
            t = sim.install_silently(p.domain)
            now = int(time.time())
            return p, store.save(
                Portal(
                    member_id=p.member_id,
                    domain=p.domain,
                    client_endpoint=t["client_endpoint"],
                    state=PortalState.ACTIVE,
                    access_token=t["access_token"],
                    refresh_token=t["refresh_token"],
                    application_token=t["application_token"],
                    installed_at=now,
                    refreshed_at=now,
                )
            )

        sim.oauth.latency_s = args.latency_ms / 1000
        sim_portal, record = install()
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
                sim.expire_access_tokens(sim_portal.domain)
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
