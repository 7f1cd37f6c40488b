"""Cost model (issue 14): what the bundle costs to run, next to one always-on queue-worker box.

Nothing heavy is re-run: the request counts come from the benches' own result lines under
bench/results/ (event storm, change audit, schedules over 5,000 portals, keep-alive sweep, intake), the
schedules, alarms, keys and memory from template.yaml, the probe/audit/keep-alive periods from the
layer's settings defaults, and the prices from bench/cost_prices.py (dated; update there). Every input
is shown as measured (with its bench and date) or assumed (with the assumption), so a reader can tell
a figure from a guess.

Printed: cost per million events, and per 1,000 portals per month for three activity profiles, next to
the always-on shape of Bitrix24's starter kit (a queue + worker + database on one small box); the ratio
serverless / always-on for the typical profile goes to bench/results/cost_model.jsonl.

Run: .venv/bin/python bench/cost_model.py [--write-doc]   (--write-doc regenerates docs/cost.md's tables)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from cost_prices import PRICES, Price  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "cost.md"
BEGIN, END = "<!-- cost-model:begin -->", "<!-- cost-model:end -->"
MONTH_H = 730.0  # AWS bills a month as 730 hours
MONTH_S = MONTH_H * 3600
DAYS = MONTH_H / 24

PROFILES = {"quiet": 50, "typical": 500, "busy": 5000}  # events per portal per day
PORTALS = 1000


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
        "steady_rest_per_event": _a(
            1.0, "requests", "steady traffic: a portal's events rarely share a 2 s batch"
        ),
        "worker_base_s": _a(0.03, "s", "per worker invocation: settings, limiter, partial-batch answer"),
        "batch_window_s": _a(2.0, "s", "MaximumBatchingWindowInSeconds of the worker's queue trigger"),
        "pollers": _a(5.0, "pollers", "Lambda's SQS event source starts with 5 long-polling pollers"),
        # Steady traffic: a batch holds events of different portals, so nothing is shared between
        # them; counted from the worker's code path for one event (the storm's figure is per event of
        # one portal's coalesced batches, a floor).
        "steady_ddb_reads_per_event": _a(
            3.0, "units", "portal record, limiter level (consistent), read marks"
        ),
        "steady_ddb_writes_per_event": _a(
            5.0,
            "units",
            "limiter, deal_mirror's deal + history entry, read mark, seen mark (no guard: idempotent)",
        ),
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


# ---------------------------------------------------------------- the model
@dataclass
class Bill:
    lines: list[tuple[str, str, float, str, float]] = field(
        default_factory=list
    )  # group, item, qty, unit, usd

    def add(self, group: str, item: str, qty: float, price: Price) -> None:
        self.lines.append((group, item, qty, price.per, qty * price.usd))

    def total(self, group: str | None = None) -> float:
        return sum(u for g, *_, u in self.lines if group is None or g == group)

    def gb_s(self) -> float:
        return sum(q for _, item, q, *_ in self.lines if item.endswith("GB-s"))


class Model:
    def __init__(
        self, inputs: dict[str, Input], facts: dict[str, Any], pol: dict[str, float], prices: dict[str, Price]
    ):
        self.i = {k: v.value for k, v in inputs.items()}
        self.inputs, self.facts, self.pol, self.p = inputs, facts, pol, prices

    def with_price(self, key: str, usd: float) -> Model:
        """The same model with one price changed (e.g. X-Ray at 0: Tracing turned off)."""
        prices = {**self.p, key: replace(self.p[key], usd=usd)}
        return Model(self.inputs, self.facts, self.pol, prices)

    def events(self, bill: Bill, events: float, rate_per_s: float, storm: bool = False) -> None:
        """Intake, queue, worker, table and logs for ``events`` events arriving at ``rate_per_s``."""
        i, p, mem = self.i, self.p, self.facts["memory_gb"]
        batch = max(1.0, min(500.0, rate_per_s * i["batch_window_s"] / i["pollers"]))
        # A storm (a mass change on one portal) fills whole batches and its repeats coalesce into
        # batch reads of 50: the measured REST requests per event instead of one read each.
        rest_per_event = i["storm_rest_per_event"] if storm else i["steady_rest_per_event"]
        bill.add("events", "API Gateway HTTP API requests", events, p["http_api_request"])
        intake_s = math.ceil((i["intake_cpu_s"] + i["sqs_send_s"]) * 1000) / 1000
        worker_s = (i["worker_base_s"] / batch + i["worker_own_s_per_event"]) + (
            rest_per_event * i["rest_latency_s"]
        )
        bill.add("events", "Lambda requests (intake + worker)", events * (1 + 1 / batch), p["lambda_request"])
        bill.add("events", "Lambda GB-s", events * (intake_s + worker_s) * mem, p["lambda_gb_s_arm"])
        sqs = events * (1 + i["esm_sqs_per_event"] + i["sqs_worker_per_event"])
        bill.add("events", "SQS requests", sqs, p["sqs_request"])
        if storm:
            writes = events * i["storm_ddb_per_event"] * i["storm_write_share"]
            reads = events * i["storm_ddb_per_event"] * (1 - i["storm_write_share"])
        else:
            writes = events * i["steady_ddb_writes_per_event"]
            reads = events * i["steady_ddb_reads_per_event"]
        reads += events * i["intake_ddb_per_event"]
        bill.add("events", "DynamoDB writes", writes, p["ddb_write"])
        bill.add("events", "DynamoDB reads", reads, p["ddb_read"])
        gb = events * i["log_bytes_per_event"] / 1e9
        bill.add("events", "CloudWatch Logs ingested (GB)", gb, p["logs_ingest_gb"])
        # Sampled traces of the intake and of the worker, for this many events at this rate.
        share = events / max(rate_per_s * MONTH_S, 1e-9)
        traces = (self.traces(rate_per_s) + self.traces(rate_per_s / batch)) * share
        bill.add("events", "X-Ray traces", traces, p["xray_trace"])

    def traces(self, rate_per_s: float) -> float:
        """Lambda's fixed sampling: the first request each second and 5% of the others (per function)."""
        first, rest = self.i["xray_reservoir_per_s"], self.i["xray_rate"]
        return (min(rate_per_s, first) + rest * max(0.0, rate_per_s - first)) * MONTH_S

    def fleet(self, bill: Bill, portals: float) -> None:
        """What the portals cost whatever their traffic: probes, audits, keep-alive, re-checks, rounds."""
        i, p, pol, mem = self.i, self.p, self.pol, self.facts["memory_gb"]
        boxes = portals * i["box_share"]
        probes = (boxes * MONTH_S / pol["probe_box_s"]) + (portals - boxes) * MONTH_S / pol["probe_cloud_s"]
        # A probe: the round's share of time, then ONAPPTEST comes back through the API and the intake,
        # which hands it to the pull function (a second invocation).
        bill.add("probes", "API Gateway requests (ONAPPTEST)", probes, p["http_api_request"])
        bill.add("probes", "Lambda requests", probes * 2, p["lambda_request"])
        probe_s = i["probe_round_s_per_portal"] + math.ceil((i["intake_cpu_s"] + 0.05) * 1000) / 1000
        bill.add("probes", "Lambda GB-s", probes * probe_s * mem, p["lambda_gb_s_arm"])
        bill.add("probes", "DynamoDB writes", probes * i["probe_ddb"] / 2, p["ddb_write"])
        bill.add("probes", "DynamoDB reads", probes * i["probe_ddb"] / 2, p["ddb_read"])
        hours = portals * MONTH_H
        runs = hours * 3600 / pol["audit_interval_s"]
        bill.add("audits", "Lambda GB-s", runs * i["audit_round_s_per_portal"] * mem, p["lambda_gb_s_arm"])
        ddb = hours * i["audit_ddb_per_portal_h"]
        bill.add("audits", "DynamoDB writes", ddb * i["audit_write_share"], p["ddb_write"])
        bill.add("audits", "DynamoDB reads", ddb * (1 - i["audit_write_share"]), p["ddb_read"])
        refreshes = portals * DAYS / pol["keepalive_days"]
        bill.add("keep-alive", "Lambda GB-s", refreshes * i["refresh_s"] * mem, p["lambda_gb_s_arm"])
        bill.add("keep-alive", "DynamoDB writes", refreshes * i["refresh_ddb"], p["ddb_write"])
        checks = portals * i["recheck_share"] * DAYS / 7
        bill.add("re-checks", "Lambda GB-s", checks * i["recheck_s"] * mem, p["lambda_gb_s_arm"])
        bill.add("re-checks", "DynamoDB writes", checks * i["recheck_ddb"], p["ddb_write"])
        invocations = sum(per_month(s) for s in self.facts["schedules"])
        bill.add("schedules", "EventBridge Scheduler invocations", invocations, p["scheduler_invocation"])
        bill.add("schedules", "Lambda requests", invocations, p["lambda_request"])
        bill.add("schedules", "Lambda GB-s", invocations * i["round_base_s"] * mem, p["lambda_gb_s_arm"])
        bill.add("schedules", "DynamoDB reads (index Queries)", invocations * i["round_ddb"], p["ddb_read"])
        gb = (
            invocations * i["log_bytes_per_invocation"] + (runs + probes) * i["log_bytes_per_portal_round"]
        ) / 1e9
        bill.add("schedules", "CloudWatch Logs ingested (GB)", gb, p["logs_ingest_gb"])
        bill.add("schedules", "X-Ray traces", self.traces(invocations / MONTH_S), p["xray_trace"])
        table_gb = portals * i["storage_kb_per_portal"] / 1e6
        bill.add("storage", "DynamoDB storage (GB-month)", table_gb, p["ddb_storage_gb"])
        bill.add("storage", "DynamoDB point-in-time recovery (GB-month)", table_gb, p["ddb_pitr_gb"])

    def fixed(self, bill: Bill, logs_gb: float) -> None:
        i, p, f = self.i, self.p, self.facts
        bill.add("fixed", f"CloudWatch alarms ({f['alarms']})", f["alarms"], p["alarm_month"])
        bill.add("fixed", f"CloudWatch dashboards ({f['dashboards']})", f["dashboards"], p["dashboard_month"])
        bill.add("fixed", f"KMS customer managed keys ({f['kms_keys']})", f["kms_keys"], p["kms_key_month"])
        bill.add("fixed", "KMS requests", i["kms_requests_month"], p["kms_request"])
        bill.add("fixed", "EMF custom metrics", i["metrics"], p["metric_month"])
        bill.add(
            "fixed",
            "SSM GetParameter (client_secret)",
            f["functions"] * i["cold_starts_per_h"] * MONTH_H,
            p["ssm_get_parameter"],
        )
        bill.add("fixed", "SQS idle long polls", i["pollers"] * 3 * 60 * MONTH_H, p["sqs_request"])
        cold = f["functions"] * i["cold_starts_per_h"] * MONTH_H
        bill.add("fixed", "Lambda GB-s", cold * i["cold_start_s"] * f["memory_gb"], p["lambda_gb_s_arm"])
        keep = min(1.0, f["log_retention_days"] / DAYS)
        bill.add("fixed", "CloudWatch Logs stored (GB-month)", logs_gb * keep, p["logs_store_gb"])

    def month(self, events_per_portal_day: float, portals: float = PORTALS) -> Bill:
        bill = Bill()
        events = portals * events_per_portal_day * DAYS
        self.events(bill, events, events / MONTH_S)
        self.fleet(bill, portals)
        logs = sum(q for _, item, q, *_ in bill.lines if item.startswith("CloudWatch Logs ingested"))
        self.fixed(bill, logs)
        return bill

    def per_million(self, events_per_portal_day: float, portals: float = PORTALS) -> float:
        """The events' own cost per million events at the profile's arrival rate."""
        bill = Bill()
        rate = portals * events_per_portal_day / 86400
        self.events(bill, 1e6, rate)
        return bill.total()

    def per_million_storm(self) -> float:
        """The same for a storm: events queued faster than the worker takes them (full batches)."""
        bill = Bill()
        self.events(bill, 1e6, 500 * self.i["pollers"] / self.i["batch_window_s"], storm=True)
        return bill.total()

    def always_on(self, events_per_portal_day: float, portals: float = PORTALS) -> dict[str, float]:
        """The starter kit's shape: one small box (or several at peak), and its managed variant."""
        i, p = self.i, self.p
        peak = portals * events_per_portal_day / 86400 * i["peak_factor"]
        boxes = max(1, math.ceil(peak / i["vm_events_per_s"]))
        box = (
            p["ec2_t4g_small_hour"].usd * MONTH_H
            + 20 * (p["ebs_gp3_gb"].usd + p["ebs_snapshot_gb"].usd)
            + p["public_ipv4_hour"].usd * MONTH_H
        )
        fargate = (0.5 * p["fargate_vcpu_hour_arm"].usd + 1 * p["fargate_gb_hour_arm"].usd) * MONTH_H
        managed = (
            fargate * boxes
            + p["rds_t4g_micro_hour"].usd * MONTH_H
            + 20 * p["rds_storage_gb"].usd
            + (p["alb_hour"].usd + p["alb_lcu_hour"].usd) * MONTH_H
            + p["public_ipv4_hour"].usd * MONTH_H * (2 + boxes)
        )
        return {"boxes": boxes, "vm": box * boxes, "managed": managed}


def build(
    results: Path = RESULTS, template: Path = ROOT / "template.yaml", prices: dict[str, Price] | None = None
) -> Model:
    inputs = {**storm_inputs(results), **other_inputs(results), **assumptions()}
    return Model(inputs, template_facts(template), policies(), prices or PRICES)


from cost_render import render  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-doc", action="store_true", help="regenerate the tables in docs/cost.md")
    args = parser.parse_args()
    model = build()
    text = render(model)
    print(text)
    typical = PROFILES["typical"]
    serverless = model.month(typical).total()
    vm = model.always_on(typical)["vm"]
    from _common import report

    report(
        "cost_model",
        "monthly cost of 1,000 portals at 500 events/day each (serverless)",
        serverless,
        "USD",
        vm,
        "one always-on t4g.small box (queue + worker + database), same load",
        per_million_events=round(model.per_million(typical), 4),
        command="bench/cost_model.py",
    )
    if args.write_doc:
        doc = DOC.read_text(encoding="utf-8")
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        DOC.write_text(f"{head}{BEGIN}\n{text}{END}{tail}", encoding="utf-8")
        print(f"cost_model: wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
