"""The change audit's cost per portal per hour, the events it saves, and detection time with the defaults.

One portal of the simulator (``--deals`` deals, default 10,000) lives one hour of its own clock with the
shipped AuditPolicy: ``--changes`` changes an hour (default 120) at random times, of which ``--drop``
(default 5%) lose their event — the cloud queue dropped them; the others' events reach the worker,
which marks them seen as it does in production (one BatchWriteItem a batch). The audit runs every
``interval_s`` of the portal's clock, as its schedule would, against DynamoDB Local (its state, the seen
marks, the known-ID shards), and an hourly reconciliation runs its course.

Printed against floors measured or fixed in the same run:

* REST requests the audit spent in the hour vs the portal's whole REST budget for an hour (2 req/s);
* DynamoDB requests the audit made in the hour vs the hour's events (requests per event);
* changes lost after the audit (sent neither by an event nor by the audit) vs changes dropped (0 is the
  goal);
* the slowest detection (a dropped change's time to the audit's run that sent it) vs the 10-minute goal.

Run: .venv/bin/python bench/audit_cost.py [--deals 10000 --changes 120 --drop 0.05 --seed 7]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import report  # noqa: E402
from refresh_overhead import fresh_table  # noqa: E402

BUDGET_PER_HOUR = 2 * 3600  # Bitrix24's leaky bucket drains 2 requests a second (limits.md)
GOAL_DETECTION_S = 600


def counting_client(services: Any, counter: Counter[str]) -> Any:
    """A DynamoDB client that counts every request it sends, by operation."""
    client = services.client("dynamodb")
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: counter.update([model.name]))
    return client


def run(args: argparse.Namespace) -> None:
    from b24core.aws.settings import AuditPolicy
    from b24core.bitrix.webhook import parse_incoming
    from b24core.capabilities.objects import catalog
    from b24core.delivery.audit import ChangeAudit
    from b24core.delivery.known_ids import DynamoKnownIds
    from b24core.events.message import QueuedEvent
    from b24core.portals.model import Portal
    from b24core.portals.states import PortalState
    from b24core.tokens.client import PortalClient
    from b24core.worker.seen_marks import Seen, SeenMarks
    from b24sim import Simulator
    from b24stack.services import LocalServices

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ["B24_ALLOW_INSECURE_ENDPOINTS"] = "1"  # the simulator's portal lives on 127.0.0.1
    rng = random.Random(args.seed)
    policy = AuditPolicy()
    deal = catalog()["crm.deal"]
    wanted = set(deal.events)
    with LocalServices(in_memory=True) as services, Simulator("bench.audit", "bench-secret") as sim:
        table = fresh_table(services)
        audit_calls: Counter[str] = Counter()
        worker_calls: Counter[str] = Counter()
        box = sim.add_portal(profile="box", queue_blocked=True)
        box.rate = (10**6, 10**6)  # the bench counts requests; the bucket is not what it measures
        with sim.lock:
            for _ in range(args.deals):
                box.deals.add({"TITLE": "existing"}, 1, sim.clock.now() - 86400)
        record = Portal(box.member_id, box.domain, box.client_endpoint, state=PortalState.ACTIVE)
        client = PortalClient(
            record, keeper=None, webhook=parse_incoming(box.add_incoming_webhook(["crm"]), local=True)
        )  # type: ignore[arg-type]
        worker_marks = SeenMarks(counting_client(services, worker_calls), table)
        sent: list[QueuedEvent] = []

        def sink(messages: dict[str, QueuedEvent]) -> set[str]:
            sent.extend(messages.values())
            return set(messages)

        audit = ChangeAudit(
            SeenMarks(counting_client(services, audit_calls), table),
            DynamoKnownIds(counting_client(services, audit_calls), table),
            sink,
            overlap_s=policy.overlap_s,
            max_pages=policy.max_pages,
            reconcile_every_s=policy.reconcile_s,
            reconcile_requests=policy.reconcile_requests,
            clock=sim.clock.now,
        )
        feeds: dict[str, Any] = {}

        def audit_once() -> Any:
            nonlocal feeds
            feeds, result = audit.run(
                client,
                box.member_id,
                box.domain,
                feeds,
                [deal],
                wanted,
                grace_s=policy.grace_s,
                polling=False,
                since=sim.clock.now() - 60,
            )
            return result

        # Warm-up: the first run (and its first reconciliation, which learns every ID) before the hour.
        while True:
            if any(k.reconciled for k in audit_once().kinds):
                break
        sim.clock.advance(policy.interval_s)
        audit_once()
        audit_calls.clear()
        sent.clear()

        # The hour: changes at random moments, some dropped; the audit at its interval.
        start = sim.clock.now()
        moments = sorted(rng.uniform(0, 3600) for _ in range(args.changes))
        dropped: dict[int, float] = {}  # deal id -> when its change was made (portal clock)
        delivered = 0
        rest_before = len(sim.calls_for(box.domain))
        runs = 0
        found_at: dict[int, float] = {}
        t = 0.0
        next_audit = rng.uniform(0, policy.interval_s)  # the schedule's phase against the changes
        pending = list(moments)
        while t < 3600 + policy.interval_s + policy.grace_s:
            step_to = min([next_audit, *(pending[:1] or [10**9])])
            if step_to > t:
                sim.clock.advance(step_to - t)
                t = step_to
            if pending and pending[0] <= t:
                pending.pop(0)
                target = rng.randint(1, args.deals)
                box.deals.update(target, {"TITLE": f"v{t:.0f}"}, 1, sim.clock.now())
                if rng.random() < args.drop:
                    dropped[target] = sim.clock.now()
                else:
                    delivered += 1  # the event reached the worker, which marks it (batches of 1 here)
                    worker_marks.mark(
                        box.member_id, {("crm.deal", target): Seen.of(sim.clock.now(), "online", False)}
                    )
                    dropped.pop(target, None)
                continue
            if t >= next_audit:
                before = len(sent)
                audit_once()
                runs += 1
                for message in sent[before:]:
                    found_at.setdefault(int(message.data["FIELDS"]["ID"]), sim.clock.now())
                next_audit += policy.interval_s
        rest = len(sim.calls_for(box.domain)) - rest_before
        dynamo = sum(audit_calls.values())
        lost = [d for d in dropped if d not in found_at]
        # The schedule looks for due audits once a minute: up to a minute more than the interval.
        tick = 60.0
        detection = [found_at[d] - at + tick for d, at in dropped.items() if d in found_at]
        hours = (sim.clock.now() - start) / 3600
        print(
            f"audit_cost: {runs} audits over {hours:.2f} h of the portal's clock; {args.deals} deals, "
            f"{args.changes} changes, {len(dropped)} dropped, {delivered} delivered; "
            f"DynamoDB calls {dict(audit_calls)}; worker seen-mark writes {dict(worker_calls)}"
        )
        report(
            "audit_cost",
            "audit REST requests per portal-hour",
            rest / hours,
            "requests",
            BUDGET_PER_HOUR,
            "the portal's REST budget per hour (2/s)",
            target=0.01,
            deals=args.deals,
            changes=args.changes,
        )
        report(
            "audit_cost",
            "audit DynamoDB requests per portal-hour",
            dynamo / hours,
            "requests",
            args.changes / hours,
            "the hour's changes (requests per change)",
        )
        report(
            "audit_cost",
            "changes lost after the audit",
            float(len(lost)),
            "changes",
            float(max(1, len(dropped))),
            "changes whose event was dropped",
            target=0.0,
            saved=len(dropped) - len(lost),
        )
        report(
            "audit_cost",
            "slowest detection of a dropped change (defaults, with the schedule's minute)",
            max(detection or [0.0]),
            "s",
            float(GOAL_DETECTION_S),
            "the 10-minute goal",
            target=1.0,
            median_s=sorted(detection)[len(detection) // 2] if detection else 0.0,
            interval_s=policy.interval_s,
            grace_s=policy.grace_s,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=120)
    parser.add_argument("--drop", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
