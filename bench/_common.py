"""Shared bits of the benchmarks: where results go and how they are printed, and the DynamoDB Local
seeding the table benchmarks share (services in memory, a fresh table shaped by template.yaml, portals
and raw items batch-written into it)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from b24stack.services import LocalServices

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def report(
    bench: str,
    name: str,
    value: float,
    unit: str,
    floor: float,
    floor_name: str,
    target: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Print one measured figure against the floor/peer measured in the same run; append a JSON line."""
    ratio = value / floor if floor else float("inf")
    verdict = ""
    if target is not None:
        verdict = f"  (target <= {target:.2f}x: {'met' if ratio <= target else 'MISSED'})"
    print(f"{bench}: {name} = {value:.4g} {unit}; {floor_name} = {floor:.4g} {unit}; ", end="")
    print(f"ratio {ratio:.2f}x{verdict}")
    fields = {"name": name, "value": value, "unit": unit, "floor": floor, "floor_name": floor_name}
    return record(bench, **fields, ratio=round(ratio, 3), target=target, **extra)


def record(bench: str, file: str | None = None, **fields: Any) -> dict[str, Any]:
    """Append one JSON line (with when and where it was measured) to bench/results/<file or bench>.jsonl:
    the figures other tools read (the cost script reads a run's line of the event storm)."""
    row = {
        "bench": bench,
        **fields,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / f"{file or bench}.jsonl").open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    return row


def median(values: list[float]) -> float:
    return statistics.median(values)


# ---------------------------------------------------------------- DynamoDB Local seeding


def local_services() -> LocalServices:
    """DynamoDB Local and moto for one run, tables in memory (use it as a context manager). boto3
    clients made outside it (the stores) need credentials of some kind: dummy ones unless set."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    from b24stack.services import LocalServices

    return LocalServices(in_memory=True)


def fresh_table(services: LocalServices, prefix: str) -> str:
    """A new, empty table shaped like template.yaml's AppTable (keys, gsi1): no other run's items."""
    from b24stack.tables import scratch_table

    return scratch_table(services, ROOT / "template.yaml", prefix)


def put_portals(store: Any, portals: list[Any], workers: int = 4) -> float:
    """Save portal records through ``store.batch_put``, 500 a call, ``workers`` calls at once (the
    load of a large fleet is minutes otherwise); returns the seconds it took."""
    from concurrent.futures import ThreadPoolExecutor

    started = time.perf_counter()
    chunks = [portals[i : i + 500] for i in range(0, len(portals), 500)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(store.batch_put, chunks))
    return time.perf_counter() - started


def write_items(db: Any, table: str, items: list[dict[str, Any]]) -> None:
    """Raw items (DynamoDB JSON), 25 per BatchWriteItem, until none is left unprocessed."""
    for start in range(0, len(items), 25):
        request = {table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
        while request:
            request = db.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def installed_portal(sim: Any, **fields: Any) -> Any:
    """A simulator portal with the app installed (no rate limit to speak of) and its record, active,
    with the install's tokens; ``fields`` set the rest (installed_at, refreshed_at, ...)."""
    import uuid

    from b24core.portals.model import Portal
    from b24core.portals.states import PortalState

    p = sim.add_portal(f"{uuid.uuid4().hex[:12]}.bitrix24.test", rate=(1e6, 1e6))
    t = sim.install_silently(p.domain)
    return Portal(
        member_id=p.member_id,
        domain=p.domain,
        client_endpoint=t["client_endpoint"],
        state=PortalState.ACTIVE,
        access_token=t["access_token"],
        refresh_token=t["refresh_token"],
        application_token=t["application_token"],
        **fields,
    )
