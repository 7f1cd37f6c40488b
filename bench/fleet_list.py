"""Listing a fleet (issue 13: `portals list` at 5,000 portals), in DynamoDB Local.

N portals (default 5,000), each with a few other items in its partition (delivery state, read marks:
what a live table holds; real tables hold far more). Measured in the same run:

1. Items read to list every portal through the directory (gsi1 Query + BatchGetItem of the records)
   vs the portals listed (the floor: no listing reads fewer), target <= 2.05x; the Scan the old
   listing made is printed beside it (it reads every item of the table).
2. Wall time of the full listing through the directory vs the old Scan of the same table (peer).
3. The cost the directory adds to every portal save (one conditional PutItem that writes nothing when
   the domain did not change): wall time of saves with it vs without it (floor).

Run: .venv/bin/python bench/fleet_list.py [--portals 5000] [--extra 10] [--saves 300]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import fresh_table, local_services, put_portals, report, write_items  # noqa: E402

BENCH = "fleet_list"


def seed(services: Any, table: str, n: int, extra: int) -> list[Any]:
    from b24core.portals.model import Portal
    from b24core.portals.states import PortalState
    from b24core.portals.store import DynamoPortalStore

    store = DynamoPortalStore(table, services.region, services.dynamodb_endpoint)
    now = int(time.time())
    portals = [
        Portal(
            member_id=uuid.uuid4().hex,
            domain=f"portal{i:05d}.bitrix24.com",
            client_endpoint=f"https://portal{i:05d}.bitrix24.com/rest/",
            state=PortalState.ACTIVE,
            access_token="a" * 40,
            refresh_token="r" * 40,
            installed_at=now,
            refreshed_at=now,
        )
        for i in range(n)
    ]
    put_portals(store, portals)
    others = [
        {"pk": {"S": f"PORTAL#{p.member_id}"}, "sk": {"S": f"READ#crm.deal.get#{k}"}}
        for p in portals
        for k in range(extra)
    ]
    write_items(services.client("dynamodb"), table, others)
    return portals


class Reads:
    """Items read by Query/Scan (ScannedCount) and by BatchGetItem (items returned)."""

    def __init__(self) -> None:
        self.items = 0
        self.ops: dict[str, int] = {}

    def __call__(self, model: Any = None, parsed: Any = None, **_: Any) -> None:
        self.ops[model.name] = self.ops.get(model.name, 0) + 1
        if not isinstance(parsed, dict):
            return
        if "ScannedCount" in parsed:
            self.items += int(parsed["ScannedCount"])
        for rows in (parsed.get("Responses") or {}).values():
            self.items += len(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--portals", type=int, default=5000)
    parser.add_argument("--extra", type=int, default=10, help="other items per portal partition")
    parser.add_argument("--saves", type=int, default=300)
    args = parser.parse_args()

    import botocore.session  # noqa: F401 - the event hooks below

    from b24cli.fleet import Filter, Selection
    from b24cli.target import Target
    from b24core.portals.store import DynamoPortalStore

    with local_services() as services:
        table = fresh_table(services, "bench-fleet")
        t0 = time.perf_counter()
        portals = seed(services, table, args.portals, args.extra)
        print(f"seeded {args.portals} portals (+{args.extra} items each) in {time.perf_counter() - t0:.1f} s")
        target = Target(table, services.region, services.dynamodb_endpoint, "bench")
        store = DynamoPortalStore(table, services.region, services.dynamodb_endpoint)

        def clients(*models: Any) -> list[Any]:
            found = {id(c): c for c in (m._get_connection().connection.client for m in models)}
            return list(found.values())

        def measure(run: Any, hooked: list[Any]) -> tuple[float, Reads, Any]:
            reads = Reads()
            for client in hooked:
                client.meta.events.register("after-call.dynamodb", reads)
            started = time.perf_counter()
            result = run()
            elapsed = time.perf_counter() - started
            for client in hooked:
                client.meta.events.unregister("after-call.dynamodb", reads)
            return elapsed, reads, result

        selection = Selection(target, Filter())
        hooked = clients(selection.store.directory._model, selection.store._model)
        listed_t, listed_reads, views = measure(lambda: list(selection), hooked)
        scan_t, scan_reads, scanned = measure(lambda: store.list_all(limit=10**9), clients(store._model))
        assert len(views) == len(scanned) == args.portals
        report(
            BENCH,
            "items read to list every portal (directory)",
            listed_reads.items,
            "items",
            args.portals,
            "portals listed",
            target=2.05,
            portals=args.portals,
            extra_items=args.extra,
            scan_items_read=scan_reads.items,
            ops=listed_reads.ops,
        )
        print(f"  the old Scan read {scan_reads.items} items ({scan_reads.ops})")
        report(
            BENCH,
            "wall time to list every portal (directory)",
            listed_t,
            "s",
            scan_t,
            "the old Scan of the same table",
            portals=args.portals,
            extra_items=args.extra,
        )

        def saves(on: DynamoPortalStore, rounds: list[Any]) -> tuple[float, list[Any]]:
            started = time.perf_counter()
            done = [on.save(replace(p, refreshed_at=p.refreshed_at + 1)) for p in rounds]
            return (time.perf_counter() - started) / len(rounds) * 1000, done

        sample = [store.get(p.member_id) for p in portals[: args.saves]]
        fresh = DynamoPortalStore(table, services.region, services.dynamodb_endpoint)  # a cold Lambda
        cold, sample = saves(fresh, sample)
        warm, sample = saves(fresh, sample)  # the same process saving the same portals again
        fresh.directory.put = lambda member_id, domain: False  # type: ignore[method-assign]
        fresh._listed.clear()
        without, sample = saves(fresh, sample)
        for name, value in (("first save in a process", cold), ("later saves in the same process", warm)):
            report(
                BENCH,
                f"portal save, directory kept: {name}",
                value,
                "ms/save",
                without,
                "the same save without the directory",
                saves=args.saves,
            )


if __name__ == "__main__":
    main()
