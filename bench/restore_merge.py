"""Restore merge cost (issue 13: day-one operations for 5,000 portals; docs/restore.md).

A live table of N portals (default 5,000) in DynamoDB Local, three items each (the portal record, a
delivery state, an app data item), copied as a point-in-time restore would copy it. After that time,
60% of the portals refresh their tokens and 2% are lost from the live table. Then
``b24core.portals.restore.merge`` merges the restored table into the live one, as
``b24app restore merge --from RESTORED --into LIVE`` does.

Measured: the merge's wall time vs the floor measured in the same run, a plain copy of the restored
table into an empty one (Scan + BatchWriteItem of every item, no rule, no condition); and the merge's
DynamoDB requests per item. Checked: no refreshed portal got its older refresh token back, and every
lost portal came back.

Run: .venv/bin/python bench/restore_merge.py [--portals 5000]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import ROOT, fresh_table, local_services, report, write_items  # noqa: E402

T = 1_790_000_000


class Ops:
    """Requests of one botocore client, per operation."""

    def __init__(self) -> None:
        self.ops: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, model: Any = None, **_: Any) -> None:
        with self.lock:
            self.ops[model.name] += 1


def record(mid: str, refresh: str, at: int, version: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"PORTAL#{mid}"},
        "sk": {"S": "PORTAL"},
        "member_id": {"S": mid},
        "domain": {"S": f"{mid[:8]}.example.com"},
        "client_endpoint": {"S": f"https://{mid[:8]}.example.com/rest/"},
        "state": {"S": "active"},
        "token_state": {"S": "active"},
        "refresh_token": {"S": refresh},
        "access_token": {"S": "at-" + refresh},
        "refreshed_at": {"N": str(at)},
        "installed_at": {"N": str(T - 90 * 86400)},
        "updated_at": {"N": str(at)},
        "version": {"N": str(version)},
        "gsi1pk": {"S": "REFRESH"},
        "gsi1sk": {"S": f"{at:012d}#{mid}"},
    }


def items_of(mid: str) -> list[dict[str, Any]]:
    pk = {"S": f"PORTAL#{mid}"}
    return [
        record(mid, f"rt-{mid}-T", T - 86400, 3),
        {
            "pk": pk,
            "sk": {"S": "DELIVERY"},
            "member_id": {"S": mid},
            "state": {"S": "{}"},
            "version": {"N": "2"},
        },
        {"pk": pk, "sk": {"S": "APP#settings"}, "data": {"S": '{"owner": "' + mid + '"}'}},
    ]


def scan_all(db: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = db.scan(**kwargs)
        items += page["Items"]
        if not page.get("LastEvaluatedKey"):
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--portals", type=int, default=5000)
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT / "layers/b24core"), str(ROOT / "local")]
    from b24core.portals.restore import merge

    services = local_services()
    services.start()
    try:
        db = services.client("dynamodb")
        live, restored, floor_table = (fresh_table(services, "bench-restore") for _ in range(3))
        ids = [uuid.uuid4().hex for _ in range(args.portals)]
        write_items(db, live, [i for mid in ids for i in items_of(mid)])
        write_items(db, restored, scan_all(db, live))  # the point-in-time copy
        refreshed, lost = ids[: len(ids) * 6 // 10], ids[-max(1, len(ids) // 50) :]
        write_items(db, live, [record(mid, f"rt-{mid}-new", T + 3600, 4) for mid in refreshed])
        for mid in lost:
            for sk in ("PORTAL", "DELIVERY", "APP#settings"):
                db.delete_item(TableName=live, Key={"pk": {"S": f"PORTAL#{mid}"}, "sk": {"S": sk}})

        started = time.perf_counter()
        write_items(db, floor_table, scan_all(db, restored))
        floor_s = time.perf_counter() - started

        ops = Ops()
        db.meta.events.register("after-call.dynamodb", ops)
        started = time.perf_counter()
        result = merge(db, restored, live)
        merge_s = time.perf_counter() - started

        after = {(i["pk"]["S"], i["sk"]["S"]): i for i in scan_all(db, live)}
        older_back = [
            m for m in refreshed if after[(f"PORTAL#{m}", "PORTAL")]["refresh_token"]["S"] != f"rt-{m}-new"
        ]
        missing = [m for m in lost if (f"PORTAL#{m}", "APP#settings") not in after]
        assert not older_back, f"{len(older_back)} refreshed portals got an older refresh token back"
        assert not missing, f"{len(missing)} lost portals did not come back"
        items = args.portals * 3
        requests = sum(ops.ops.values())
        print(f"restore_merge: {result.counts()}; requests {dict(ops.ops)}")
        report(
            "restore_merge",
            f"merge of {args.portals} portals ({items} items)",
            merge_s,
            "s",
            floor_s,
            "plain copy (Scan + BatchWriteItem)",
            portals=args.portals,
            requests_per_item=round(requests / items, 3),
            tokens_kept_newer=result.tokens_kept_newer,
            restored=result.restored,
        )
    finally:
        services.stop()


if __name__ == "__main__":
    main()
