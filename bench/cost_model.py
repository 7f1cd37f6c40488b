"""Cost model (issue 14): what the bundle costs to run, next to one always-on queue-worker box.

Nothing heavy is re-run: the request counts come from the benches' own result lines under
bench/results/ (event storm, steady traffic, change audit, schedules over 5,000 portals, keep-alive sweep,
intake), the schedules, alarms, keys and memory from template.yaml, the probe/audit/keep-alive periods
from the layer's settings defaults, and the prices from bench/cost_prices.py (dated; update there).
Every input is shown as measured (with its bench and date) or assumed (with the assumption), so a
reader can tell a figure from a guess.

Printed: cost per million events, and per 1,000 portals per month for three activity profiles, next to
the always-on shape of Bitrix24's starter kit (a queue + worker + database on one small box); the ratio
serverless / always-on for the typical profile goes to bench/results/cost_model.jsonl.

Run: .venv/bin/python bench/cost_model.py [--write-doc]   (--write-doc regenerates docs/cost.md's tables)
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from cost_inputs import (  # noqa: E402
    MONTH_H,
    MONTH_S,
    Input,
    assumptions,
    other_inputs,
    per_month,
    policies,
    steady_inputs,
    storm_inputs,
    template_facts,
)
from cost_prices import PRICES, Price  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "cost.md"
BEGIN, END = "<!-- cost-model:begin -->", "<!-- cost-model:end -->"
DAYS = MONTH_H / 24

PROFILES = {"quiet": 50, "typical": 500, "busy": 5000}  # events per portal per day
PORTALS = 1000


# ---------------------------------------------------------------- the model
@dataclass
class Bill:
    #: (group, item, quantity, unit price's unit, USD)
    lines: list[tuple[str, str, float, str, float]] = field(default_factory=list)

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
        # The worker's own time per event: as the storm measured it, or in steady traffic as the steady
        # bench measured it (each event its portal's own reads and writes) when it has run.
        own = i["worker_own_s_per_event"]
        if not storm:
            own = i.get("steady_worker_own_s_per_event", own)
        worker_s = (i["worker_base_s"] / batch + own) + (rest_per_event * i["rest_latency_s"])
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
    inputs = {**storm_inputs(results), **steady_inputs(results), **other_inputs(results), **assumptions()}
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
