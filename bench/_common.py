"""Shared bits of the benchmarks: where results go and how they are printed."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

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
