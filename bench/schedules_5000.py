"""Scheduled rounds over 5,000 portals (issue 13): does each schedule finish within its period?

The delivery probe, the offline pull and the change audit each run every minute over the portals that
are due. This bench makes every one of N portals (default 5,000) due at once - the worst case, after an
outage or a first deploy; in steady state boxes are probed every 5 minutes and audited every 5, so about
a fifth is due per minute - and runs each round as its function runs it (DeliveryRunner.probe_due,
pull_due, AuditRound.due: the bounded thread pool of b24core/delivery/fleet.py, the Lambda's deadline of
its 60 s timeout less 8 s of slack). Portals are in-process fakes (tests/unit/delivery_fakes.py, the
documented offline-queue behaviour the simulator also plays) whose every REST request takes
``--latency-ms``; the change audit's listing is a stand-in that spends one request per kind of object.
Stores are in memory: the figure is the rounds' own scheduling, not DynamoDB.

For each round it prints the time every due portal needs against the schedule's period (ratio; target
<= 1.0): the run's wall time when it finished them, else projected from its pace (a run stops at its
deadline, reports RoundBehind, and the next run continues), with the portals done and left, the measured
per-portal time, the portals per period the round can take, and what running the portals one at a time
(before this change) would take.

Run: .venv/bin/python bench/schedules_5000.py [--portals 5000] [--latency-ms 100] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
from _common import ROOT, report  # noqa: E402

BENCH = "schedules_5000"
SLACK_S = 8.0  # the functions' deadline: their 60 s timeout less this (entry/offline_pull.py)


def build(n: int, latency_s: float, concurrency: int, period_s: float) -> tuple[Any, Any, Any]:
    from b24core.aws.settings import AuditPolicy, DeliveryPolicy
    from b24core.capabilities.manifest import load_manifest
    from b24core.delivery.audit_cursor import AuditResult, KindResult
    from b24core.delivery.audit_round import AuditRound
    from b24core.delivery.audit_store import InMemoryAuditStore, schedule_audit
    from b24core.delivery.offline import OfflinePuller
    from b24core.delivery.probe import AppWorld, Prober
    from b24core.delivery.route import RouteKeeper
    from b24core.delivery.runner import DeliveryRunner
    from b24core.delivery.store import DeliveryState, InMemoryDeliveryStore
    from b24core.events.queue_writer import QueueWriter
    from b24core.portals.store import InMemoryPortalStore
    from b24core.tokens.lease import InMemoryLeaseStore
    from tests.unit.delivery_fakes import PORTAL, FakePortal, FakeSqs

    delay = {"s": 0.0}  # no latency while the fleet is set up

    class SlowPortal(FakePortal):
        def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
            time.sleep(delay["s"])
            return super().call(method, params)

        def batch(self, commands: dict[str, Any], halt: bool = False) -> dict[str, Any]:
            time.sleep(delay["s"])
            return super().batch(commands, halt)

    clock = time.time
    portals, store, audits = InMemoryPortalStore(), InMemoryDeliveryStore(), InMemoryAuditStore()
    fakes: dict[str, SlowPortal] = {}
    for i in range(n):
        member = f"bench{i:05d}"
        portal = replace(PORTAL, member_id=member, domain=f"box{i}.example", version=0)
        portals.save(portal)
        fakes[member] = SlowPortal(portal=portal)
    policy = DeliveryPolicy(
        probe_timeout_s=120,
        round_concurrency=concurrency,
        pull_concurrency=concurrency,
        round_period_s=period_s,
    )
    world = lambda: AppWorld(("3.217.33.54",), "https://dl.example/app-world.json", 1.0)  # noqa: E731
    manifest = load_manifest()
    runner = DeliveryRunner(
        portals=portals,
        store=store,
        prober=Prober(store, policy, clock),
        puller=OfflinePuller(
            store, InMemoryLeaseStore(), QueueWriter(FakeSqs(), "q", sleep=lambda s: 0), policy, clock=clock
        ),
        make_client=lambda p: fakes[p.member_id],
        manifest=manifest,
        policy=policy,
        default_events_url="https://app.example.com/events",
        world=world,
        clock=clock,
    )

    class ListingAudit:
        """Stands for ChangeAudit: one list request per kind of object, nothing missed."""

        def run(self, client: Any, member_id: str, domain: str, feeds: Any, specs: Any, *a: Any, **kw: Any):
            result = AuditResult(member_id)
            for spec in specs:
                client.call("app.info")  # a list request's round trip
                result.kinds.append(KindResult(spec.kind))
            return feeds, result

    audit_round = AuditRound(
        audits,
        store,
        portals,
        RouteKeeper(store, portals, manifest, lambda p: fakes[p.member_id], world),
        make_audit=lambda m: ListingAudit(),  # type: ignore[arg-type,return-value]
        make_client=lambda p: fakes[p.member_id],
        manifest=manifest,
        policy=replace(AuditPolicy(), round_concurrency=concurrency, round_period_s=period_s),
        clock=clock,
    )
    now = int(clock())
    for member in fakes:  # every portal due now for each schedule
        store.save(DeliveryState(member, kind="box", next_probe_at=now - 1))
        schedule_audit(audits, member, now - 1)
    pull_members = list(fakes)
    for member in pull_members:
        runner.set_mode(member, "lossless")  # offline bindings made: the pull round has work on each
        fakes[member].change("ONCRMDEALUPDATE", 1)
    delay["s"] = latency_s
    return runner, audit_round, fakes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--portals", type=int, default=5000)
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--concurrency", type=int, default=0, help="0: the settings default")
    ap.add_argument("--period", type=float, default=60.0)
    args = ap.parse_args()
    from b24core.aws import metrics
    from b24core.aws.settings import DeliveryPolicy
    from b24stack.template import default_app

    os.environ.setdefault("B24_APP", default_app(ROOT))  # the shipped example's manifest
    args.concurrency = args.concurrency or DeliveryPolicy().round_concurrency
    started = time.monotonic()
    runner, audit_round, _ = build(args.portals, args.latency_ms / 1000, args.concurrency, args.period)
    print(f"{BENCH}: {args.portals} portals set up in {time.monotonic() - started:.1f} s", flush=True)
    rounds = {
        "probe": lambda deadline: runner.probe_due(deadline),
        "pull": lambda deadline: runner.pull_due(deadline),
        "audit": lambda deadline: audit_round.due(deadline),
    }
    with metrics.record_metrics() as recorded:
        for name, run in rounds.items():
            behind_before = recorded.total("RoundBehind")
            t0 = time.monotonic()
            answer = run(t0 + args.period - SLACK_S)
            wall = time.monotonic() - t0
            stats = answer["round"]
            # Behind: the rest waits for the next run; the time every due portal needs is then projected
            # from the round's pace (the figure to hold against the period).
            whole = wall if not stats["left"] else wall * args.portals / max(1, stats["done"])
            one_at_a_time = stats["per_portal_s"] * args.portals
            report(
                BENCH,
                f"{name} round, time for {args.portals} due portals",
                whole,
                "s",
                args.period,
                "schedule period",
                target=1.0,
                round=name,
                portals=args.portals,
                wall_s=round(wall, 2),
                done=stats["done"],
                left=stats["left"],
                per_portal_s=stats["per_portal_s"],
                capacity_per_period=stats["capacity"],
                concurrency=args.concurrency,
                latency_ms=args.latency_ms,
                one_at_a_time_s=round(one_at_a_time, 1),
                behind_metric=recorded.total("RoundBehind") - behind_before,
                command=" ".join(["bench/schedules_5000.py", *sys.argv[1:]]),
            )
            behind = recorded.total("RoundBehind") - behind_before
            per_ms = stats["per_portal_s"] * 1000
            print(
                f"    run of {wall:.1f} s: done {stats['done']}, left {stats['left']} "
                f"(RoundBehind {behind:.0f}); {per_ms:.0f} ms a portal, capacity {stats['capacity']} "
                f"portals/period; one at a time: {one_at_a_time:.0f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
