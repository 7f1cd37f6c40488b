"""Inputs of the cost model (bench/cost_model.py): measured counts, template facts, settings, assumptions.

Every input is an ``Input`` whose source says "measured: <bench> <date>" or "assumed: <why>", so the
doc can show a reader which figures come from a run and which are guesses to replace by a run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MONTH_H = 730.0  # AWS bills a month as 730 hours
MONTH_S = MONTH_H * 3600


@dataclass(frozen=True)
class Input:
    value: float
    unit: str
    source: str  # "measured: <bench> <date>" or "assumed: <why>"

    @property
    def measured(self) -> bool:
        return self.source.startswith("measured")


def _a(value: float, unit: str, why: str) -> Input:
    return Input(value, unit, f"assumed: {why}")


def _m(value: float, unit: str, bench: str, row: dict[str, Any], note: str = "") -> Input:
    at = str(row.get("date") or row.get("at") or "")[:10]
    return Input(value, unit, f"measured: {bench} {at}{' (' + note + ')' if note else ''}")


# ---------------------------------------------------------------- inputs
def _rows(results: Path, name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(results.glob(f"{name}*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


def _latest(rows: list[dict[str, Any]], test: Any) -> dict[str, Any] | None:
    found = [r for r in rows if test(r)]
    return found[-1] if found else None


def storm_inputs(results: Path) -> dict[str, Input]:
    """Per-event AWS requests of the worker: the storm's run lines when they carry the counts, else the
    older per-event lines, else stated assumptions."""
    rows = _rows(results, "event_storm")
    out: dict[str, Input] = {}
    # The run at the real limit (k = 1) when there is one: a time-scaled run's worker waits k times
    # longer for the portal's budget, which would overstate the billed time per event.
    runs = [r for r in rows if "dynamodb_requests_per_event" in r and r.get("events")]
    run = _latest(runs, lambda r: r.get("k") in (1, 1.0)) or _latest(runs, lambda r: True)
    if run is not None:
        note = f"{run['events']} events, k={run.get('k')}, {run.get('workers')} worker(s)"
        out["storm_ddb_per_event"] = _m(
            run["dynamodb_requests_per_event"], "requests", "event_storm", run, note
        )
        out["sqs_worker_per_event"] = _m(run["sqs_requests_per_event"], "requests", "event_storm", run, note)
        if run.get("worker_busy_s") is not None:
            busy = run["worker_busy_s"] / run["events"]
            out["worker_own_s_per_event"] = _m(busy, "s", "event_storm", run, note)
        ops = {
            k.split(".", 1)[1]: v
            for k, v in (run.get("operations") or {}).items()
            if k.startswith("dynamodb.")
        }
        if sum(ops.values()):
            writes = sum(
                v for k, v in ops.items() if k in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem")
            )
            out["storm_write_share"] = _m(writes / sum(ops.values()), "share", "event_storm", run, note)
        if run.get("rest_requests") is not None:
            out["storm_rest_per_event"] = _m(
                run["rest_requests"] / run["events"], "requests", "event_storm", run
            )
    old = _latest(rows, lambda r: str(r.get("name", "")).endswith("_dynamodb_requests_per_event"))
    if "storm_ddb_per_event" not in out and old is not None:
        out["storm_ddb_per_event"] = _m(
            old["value"], "requests", "event_storm", old, f"{old.get('events')} events"
        )
    old = _latest(rows, lambda r: str(r.get("name", "")).endswith("_sqs_requests_per_event"))
    if "sqs_worker_per_event" not in out and old is not None:
        out["sqs_worker_per_event"] = _m(
            old["value"], "requests", "event_storm", old, f"{old.get('events')} events"
        )
    old = _latest(rows, lambda r: str(r.get("name", "")).endswith("_requests") and r.get("events"))
    if "storm_rest_per_event" not in out and old is not None:
        out["storm_rest_per_event"] = _m(old["value"] / old["events"], "requests", "event_storm", old)
    out.setdefault(
        "storm_ddb_per_event", _a(2.0, "requests", "not yet measured: idempotency, marks, limiter, app write")
    )
    out.setdefault(
        "sqs_worker_per_event", _a(0.0, "requests", "not yet measured: no requeues in steady traffic")
    )
    out.setdefault(
        "worker_own_s_per_event", _a(0.01, "s", "not yet measured: the worker's own time per event, 10 ms")
    )
    out.setdefault(
        "storm_write_share", _a(0.8, "share", "not yet measured: most of the worker's requests write")
    )
    out.setdefault("storm_rest_per_event", _a(1 / 50, "requests", "not yet measured: 50 objects per batch"))
    return out


def steady_inputs(results: Path) -> dict[str, Input]:
    """What one event of steady traffic costs the worker (events of many portals, a few a second): the
    newest bench/steady_traffic.py line, else the counts along the worker's code path (assumptions)."""
    run = _latest(
        _rows(results, "steady_traffic"),
        lambda r: r.get("events") and "dynamodb_read_units_per_event" in r,
    )
    if run is None:
        return {
            "steady_ddb_reads_per_event": _a(
                3.0, "units", "portal record, limiter level (consistent), read marks"
            ),
            "steady_ddb_writes_per_event": _a(
                5.0,
                "units",
                "limiter, deal_mirror's deal + history entry, read mark, seen mark (no guard: idempotent)",
            ),
            "steady_rest_per_event": _a(
                1.0, "requests", "steady traffic: a portal's events rarely share a 2 s batch"
            ),
        }
    note = (
        f"{run['events']} events, {run.get('portals')} portals, {run.get('rate_per_s')}/s, "
        f"{run.get('events_per_invocation')} per invocation"
    )
    out = {
        "steady_ddb_reads_per_event": _m(
            run["dynamodb_read_units_per_event"], "units", "steady_traffic", run, note
        ),
        "steady_ddb_writes_per_event": _m(
            run["dynamodb_write_units_per_event"], "units", "steady_traffic", run, note
        ),
        "steady_rest_per_event": _m(run["rest_requests_per_event"], "requests", "steady_traffic", run, note),
    }
    busy, invocations = run.get("worker_busy_s_per_event"), run.get("worker_invocations")
    if busy is not None and invocations:
        # The model adds the per-invocation base over the profile's batch (Model.events): the measured
        # time per event less that base at the bench's own batch, so it is not counted twice.
        base = float(assumptions()["worker_base_s"].value) * invocations / run["events"]
        out["steady_worker_own_s_per_event"] = _m(
            max(0.0, busy - base), "s", "steady_traffic", run, note + ", less worker_base_s per invocation"
        )
    return out


def other_inputs(results: Path) -> dict[str, Input]:
    out: dict[str, Input] = {}
    audit = _rows(results, "audit_cost")
    row = _latest(audit, lambda r: r.get("name") == "audit DynamoDB requests per portal-hour")
    out["audit_ddb_per_portal_h"] = (
        _m(row["value"], "requests", "audit_cost", row) if row else _a(40, "requests", "not yet measured")
    )
    row = _latest(audit, lambda r: r.get("name") == "audit REST requests per portal-hour")
    out["audit_rest_per_portal_h"] = (
        _m(row["value"], "requests", "audit_cost", row) if row else _a(24, "requests", "not yet measured")
    )
    rounds = _rows(results, "schedules_5000")
    for name in ("probe", "audit", "pull"):
        row = _latest(rounds, lambda r, n=name: r.get("round") == n and r.get("done"))
        key = f"{name}_round_s_per_portal"
        if row:
            note = f"{row['latency_ms']:.0f} ms portals, {row['concurrency']} threads"
            out[key] = _m(row["wall_s"] / row["done"], "s", "schedules_5000", row, note)
        else:
            out[key] = _a(0.3 / 32, "s", "not yet measured: 300 ms a portal, 32 in parallel")
    sweep = _rows(results, "token_sweep")
    row = _latest(sweep, lambda r: r.get("name") == "achieved refresh rate at the default cap (sample)")
    out["refresh_s"] = (
        _m(1 / row["value"], "s", "token_sweep", row, "wall time per refresh at the default cap")
        if row
        else _a(0.2, "s", "not yet measured: the default cap of 5/s")
    )
    intake = _rows(results, "intake")
    row = _latest(intake, lambda r: r.get("name") == "cpu_per_event")
    out["intake_cpu_s"] = (
        _m(row["value"] / 1e6, "s", "intake", row) if row else _a(1e-4, "s", "not yet measured")
    )
    row = _latest(intake, lambda r: r.get("name") == "table_reads_per_1000_events")
    out["intake_ddb_per_event"] = (
        _m(row["value"] / 1000, "requests", "intake", row) if row else _a(0.0, "requests", "not yet measured")
    )
    row = _latest(intake, lambda r: r.get("name") == "cold_start")
    out["cold_start_s"] = (
        _m(row["value"] / 1000, "s", "intake", row) if row else _a(0.5, "s", "not yet measured")
    )
    return out


def assumptions() -> dict[str, Input]:
    """What no bench measures (yet): each says why its value is what it is."""
    return {
        "sqs_send_s": _a(0.015, "s", "one SQS SendMessage round trip inside the region"),
        "esm_sqs_per_event": _a(0.2, "requests", "the event source's receives and deletes, 10 records each"),
        "rest_latency_s": _a(0.3, "s", "a Bitrix24 REST answer, as the schedules bench's portals"),
        "worker_base_s": _a(0.03, "s", "per worker invocation: settings, limiter, partial-batch answer"),
        "batch_window_s": _a(2.0, "s", "MaximumBatchingWindowInSeconds of the worker's queue trigger"),
        "pollers": _a(5.0, "pollers", "Lambda's SQS event source starts with 5 long-polling pollers"),
        "audit_write_share": _a(0.4, "share", "audit requests: cursor and shard writes, seen-mark reads"),
        "round_base_s": _a(0.1, "s", "a schedule's invocation when nothing is due (one index Query)"),
        "round_ddb": _a(2.0, "requests", "index Queries a schedule's invocation makes"),
        "probe_ddb": _a(6.0, "requests", "probe sent, arrival, verdict: state reads and writes"),
        "box_share": _a(0.2, "share", "one portal in five is self-hosted (probed every 5 minutes)"),
        "refresh_ddb": _a(
            6.0, "requests", "lease put/delete, record read, conditional save, index Query share"
        ),
        "recheck_share": _a(0.1, "share", "one portal in ten lacks something and is re-checked weekly"),
        "recheck_s": _a(2.0, "s", "a capability check: a few REST calls at 300 ms"),
        "recheck_ddb": _a(5.0, "requests", "record, capability item, schedule item"),
        "log_bytes_per_event": _a(1500, "bytes", "access log + intake and worker platform and JSON lines"),
        "log_bytes_per_invocation": _a(800, "bytes", "a schedule's platform lines and its round summary"),
        "log_bytes_per_portal_round": _a(200, "bytes", "a portal's line in a probe or audit round"),
        "xray_reservoir_per_s": _a(
            1.0, "traces/s", "Tracing: Active; Lambda traces the first request a second"
        ),
        "xray_rate": _a(0.05, "share", "... and 5% of the others, per function (not configurable)"),
        "metrics": _a(60, "metrics", "21 metric names in the layer, about 3 dimension values each"),
        "kms_requests_month": _a(
            70_000, "requests", "7 functions: table key every 5 min, data keys at cold start"
        ),
        "cold_starts_per_h": _a(6.0, "per function-hour", "environments recycled about every 10 minutes"),
        "storage_kb_per_portal": _a(50, "KB", "record, tokens, delivery, audit shards, marks (TTL'd)"),
        "peak_factor": _a(3.0, "x average", "business hours: the busiest hour is 3x the day's average"),
        "vm_events_per_s": _a(
            30.0, "events/s", "a 2 GiB box: RabbitMQ, MySQL, 10 PHP workers at 300 ms REST"
        ),
    }


# ---------------------------------------------------------------- template facts
def template_facts(path: Path) -> dict[str, Any]:
    """Counted from template.yaml, the single source of truth: alarms, dashboards, keys, schedules."""
    from b24stack.template import parse_template

    data = parse_template(path.read_text(encoding="utf-8"))
    resources = data.get("Resources") or {}
    params = data.get("Parameters") or {}
    kinds = [r.get("Type") for r in resources.values()]
    schedules: list[str] = []
    memory = int((data.get("Globals") or {}).get("Function", {}).get("MemorySize", 128))
    for res in resources.values():
        for ev in ((res.get("Properties") or {}).get("Events") or {}).values():
            if ev.get("Type") == "ScheduleV2":
                expr = ev["Properties"]["ScheduleExpression"]
                if isinstance(expr, dict):
                    expr = params[expr["Ref"]]["Default"]
                schedules.append(str(expr))
    return {
        "alarms": kinds.count("AWS::CloudWatch::Alarm") + kinds.count("AWS::CloudWatch::CompositeAlarm"),
        "dashboards": kinds.count("AWS::CloudWatch::Dashboard"),
        "kms_keys": kinds.count("AWS::KMS::Key"),
        "functions": kinds.count("AWS::Serverless::Function"),
        "memory_gb": memory / 1024,
        "schedules": sorted(schedules),
        "log_retention_days": int(params.get("LogRetentionDays", {}).get("Default", 30)),
    }


def per_month(expr: str) -> float:
    """Invocations a month of ``rate(N unit)``."""
    n, unit = expr.removeprefix("rate(").removesuffix(")").split()
    seconds = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}[unit]
    return MONTH_S / (int(n) * seconds)


def policies() -> dict[str, float]:
    """The shipped defaults of the layer's settings (what a stack runs unless configured)."""
    from b24core.aws.settings import AuditPolicy, DeliveryPolicy, TokenPolicy

    audit, delivery, refresh = AuditPolicy(), DeliveryPolicy(), TokenPolicy()
    return {
        "audit_interval_s": audit.interval_s,
        "probe_box_s": delivery.probe_interval_box_s,
        "probe_cloud_s": delivery.probe_interval_cloud_s,
        "keepalive_days": refresh.keepalive_age_s / 86400,
    }
