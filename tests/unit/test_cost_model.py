"""The cost model (bench/cost_model.py): its arithmetic on a fixed input, its reading of bench results
(measured where present, labelled assumed where not), and docs/cost.md kept in sync with it."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import cost_inputs  # noqa: E402
import cost_model  # noqa: E402
from cost_prices import PRICES  # noqa: E402
from cost_render import render  # noqa: E402

FACTS = {
    "alarms": 2,
    "dashboards": 1,
    "kms_keys": 3,
    "functions": 7,
    "memory_gb": 0.25,
    "schedules": ["rate(1 minute)"],
    "log_retention_days": 30,
}
POLICIES: dict[str, float] = {
    "audit_interval_s": 300,
    "probe_box_s": 300,
    "probe_cloud_s": 86400,
    "keepalive_days": 30,
}


def fixed_model(**prices: float) -> cost_model.Model:
    """Every price zero except the ones given: a line's cost is then exactly its quantity times them."""
    zero = {k: replace(p, usd=prices.get(k, 0.0)) for k, p in PRICES.items()}
    inputs = {
        **cost_inputs.storm_inputs(Path("/nonexistent")),
        **cost_inputs.steady_inputs(Path("/nonexistent")),
        **cost_inputs.other_inputs(Path("/nonexistent")),
    }
    inputs.update(cost_inputs.assumptions())
    return cost_model.Model(inputs, FACTS, POLICIES, zero)


def test_a_million_events_pay_a_million_api_requests() -> None:
    model = fixed_model(http_api_request=1.0 / 1e6)
    assert model.per_million(500) == pytest.approx(1.0)


def test_worker_duration_is_billed_as_gb_seconds_of_256_mb() -> None:
    model = fixed_model(lambda_gb_s_arm=1.0)
    i = model.i
    # One event a day per portal: the worker gets one event per invocation (batch of 1).
    # The intake: its CPU per event plus one SQS send, rounded up to the millisecond as Lambda bills.
    intake_s = -(-((i["intake_cpu_s"] + i["sqs_send_s"]) * 1000) // 1) / 1000
    worker_s = (
        i["worker_base_s"] + i["worker_own_s_per_event"] + i["steady_rest_per_event"] * i["rest_latency_s"]
    )
    assert model.per_million(1) == pytest.approx(1e6 * (intake_s + worker_s) * 0.25)


def test_changing_a_price_changes_the_cost_in_proportion() -> None:
    base = cost_model.build()
    dearer = cost_model.build(
        prices={**PRICES, "ddb_write": replace(PRICES["ddb_write"], usd=2 * PRICES["ddb_write"].usd)}
    )
    writes = sum(c for _, item, _, _, c in base.month(500).lines if item == "DynamoDB writes")
    assert writes > 0
    assert dearer.month(500).total() == pytest.approx(base.month(500).total() + writes)
    assert render(dearer) != render(base)


def test_fixed_costs_come_from_the_template_counts() -> None:
    model = fixed_model(alarm_month=0.10, kms_key_month=1.0, dashboard_month=3.0)
    assert model.month(0).total("fixed") == pytest.approx(2 * 0.10 + 3 * 1.0 + 3.0)


def test_schedules_are_counted_per_month() -> None:
    assert cost_inputs.per_month("rate(1 minute)") == pytest.approx(43_800)
    assert cost_inputs.per_month("rate(1 hour)") == pytest.approx(730)
    model = fixed_model(scheduler_invocation=1.0)
    assert model.month(0).total("schedules") == pytest.approx(43_800)


def test_template_facts_count_what_the_stack_deploys() -> None:
    facts = cost_inputs.template_facts(ROOT / "template.yaml")
    assert facts["kms_keys"] == 3
    assert facts["memory_gb"] == 0.25
    assert "rate(1 minute)" in facts["schedules"]


def test_missing_storm_counts_are_labelled_assumed(tmp_path: Path) -> None:
    inputs = cost_inputs.storm_inputs(tmp_path)
    assert not inputs["storm_ddb_per_event"].measured
    assert "not yet measured" in inputs["storm_ddb_per_event"].source


def test_storm_run_lines_are_preferred_over_older_lines(tmp_path: Path) -> None:
    old = {
        "bench": "event_storm",
        "name": "storm_1_worker_scale_10_dynamodb_requests_per_event",
        "value": 9.0,
        "events": 300,
        "at": "2026-11-01T00:00:00Z",
    }
    run = {
        "bench": "event_storm",
        "date": "2026-12-05",
        "k": 1,
        "workers": 1,
        "events": 5000,
        "wall_s": 60,
        "minimum_s": 15,
        "ratio": 4,
        "rest_requests": 80,
        "dynamodb_requests": 7000,
        "sqs_requests": 50,
        "dynamodb_requests_per_event": 1.4,
        "sqs_requests_per_event": 0.01,
        "worker_busy_s": 25.0,
        "memory_mb": 256,
    }
    (tmp_path / "event_storm.jsonl").write_text(json.dumps(old) + "\n" + json.dumps(run) + "\n")
    inputs = cost_inputs.storm_inputs(tmp_path)
    assert inputs["storm_ddb_per_event"].value == 1.4
    assert inputs["worker_own_s_per_event"].value == pytest.approx(25.0 / 5000)
    assert inputs["worker_own_s_per_event"].measured
    assert "2026-12-05" in inputs["storm_ddb_per_event"].source


def test_docs_cost_md_matches_the_script() -> None:
    doc = (ROOT / "docs" / "cost.md").read_text(encoding="utf-8")
    block = doc.split(cost_model.BEGIN, 1)[1].split(cost_model.END, 1)[0]
    assert block.strip() == render(cost_model.build()).strip(), (
        "docs/cost.md is out of date: run `PYTHONPATH=layers/b24core:local:cli:apps "
        ".venv/bin/python bench/cost_model.py --write-doc` and commit it"
    )


def test_a_storm_costs_less_lambda_time_per_event_than_steady_traffic() -> None:
    model = fixed_model(lambda_gb_s_arm=1.0)
    assert model.per_million_storm() < model.per_million(500) / 5


def test_tracing_off_removes_exactly_the_x_ray_line() -> None:
    model = cost_model.build()
    traces = sum(c for _, item, _, _, c in model.month(500).lines if item == "X-Ray traces")
    assert traces > 0
    untraced = model.with_price("xray_trace", 0.0)
    assert untraced.month(500).total() == pytest.approx(model.month(500).total() - traces)


def test_the_storm_run_at_the_real_limit_is_preferred(tmp_path: Path) -> None:
    common = {"bench": "event_storm", "date": "2026-12-05", "workers": 1, "events": 1000, "rest_requests": 20}
    real = {
        **common,
        "k": 1,
        "dynamodb_requests_per_event": 1.2,
        "sqs_requests_per_event": 0.0,
        "worker_busy_s": 5,
    }
    slowed = {
        **common,
        "k": 10,
        "dynamodb_requests_per_event": 1.3,
        "sqs_requests_per_event": 0.0,
        "worker_busy_s": 50,
    }
    (tmp_path / "event_storm.jsonl").write_text(json.dumps(real) + "\n" + json.dumps(slowed) + "\n")
    inputs = cost_inputs.storm_inputs(tmp_path)
    assert inputs["worker_own_s_per_event"].value == pytest.approx(5 / 1000)
    assert "k=1" in inputs["storm_ddb_per_event"].source


def test_steady_traffic_pays_the_code_paths_requests_per_event_and_a_storm_the_measured_ones() -> None:
    model = fixed_model(ddb_write=1.0, ddb_read=1.0)
    i = model.i
    steady = i["steady_ddb_reads_per_event"] + i["steady_ddb_writes_per_event"] + i["intake_ddb_per_event"]
    assert model.per_million(500) == pytest.approx(1e6 * steady)
    assert model.per_million_storm() == pytest.approx(
        1e6 * (i["storm_ddb_per_event"] + i["intake_ddb_per_event"])
    )


def test_the_storm_write_share_comes_from_the_measured_operations(tmp_path: Path) -> None:
    run = {
        "bench": "event_storm",
        "date": "2026-12-05",
        "k": 1,
        "workers": 1,
        "events": 100,
        "rest_requests": 2,
        "dynamodb_requests_per_event": 0.4,
        "sqs_requests_per_event": 0.0,
        "worker_busy_s": 1.0,
        "operations": {"dynamodb.GetItem": 10, "dynamodb.BatchWriteItem": 30, "kms.Decrypt": 5},
    }
    (tmp_path / "event_storm.jsonl").write_text(json.dumps(run) + "\n")
    share = cost_inputs.storm_inputs(tmp_path)["storm_write_share"]
    assert share.measured
    assert share.value == pytest.approx(0.75)


STEADY = {
    "bench": "steady_traffic",
    "date": "2026-12-06T00:10:00Z",
    "events": 300,
    "portals": 20,
    "rate_per_s": 3.0,
    "dynamodb_requests_per_event": 4.2,
    "dynamodb_read_units_per_event": 1.7,
    "dynamodb_write_units_per_event": 3.9,
    "rest_requests_per_event": 0.8,
    "worker_invocations": 250,
    "events_per_invocation": 1.2,
    "worker_busy_s_per_event": 0.09,
}


def test_a_steady_traffic_line_replaces_the_assumed_steady_costs(tmp_path: Path) -> None:
    older = {**STEADY, "date": "2026-12-01T00:00:00Z", "dynamodb_read_units_per_event": 9.0}
    (tmp_path / "steady_traffic.jsonl").write_text(json.dumps(older) + "\n" + json.dumps(STEADY) + "\n")
    inputs = cost_inputs.steady_inputs(tmp_path)
    for key, value in (
        ("steady_ddb_reads_per_event", 1.7),
        ("steady_ddb_writes_per_event", 3.9),
        ("steady_rest_per_event", 0.8),
    ):
        assert inputs[key].value == value
        assert inputs[key].measured and "steady_traffic 2026-12-06" in inputs[key].source
    # The per-invocation base the model adds again at the profile's batch is taken out once.
    base = cost_inputs.assumptions()["worker_base_s"].value
    assert inputs["steady_worker_own_s_per_event"].value == pytest.approx(0.09 - base * 250 / 300)
    zero = {k: replace(p, usd=0.0) for k, p in PRICES.items()}
    zero["ddb_read"] = replace(zero["ddb_read"], usd=1.0)
    model = cost_model.Model({**fixed_model().inputs, **inputs}, FACTS, POLICIES, zero)
    assert model.per_million(500) == pytest.approx(1e6 * (1.7 + model.i["intake_ddb_per_event"]))


def test_without_a_steady_traffic_line_the_steady_costs_stay_assumed(tmp_path: Path) -> None:
    (tmp_path / "event_storm.jsonl").write_text(json.dumps({"bench": "event_storm", "events": 10}) + "\n")
    inputs = cost_inputs.steady_inputs(tmp_path)
    assert {k: v.value for k, v in inputs.items()} == {
        "steady_ddb_reads_per_event": 3.0,
        "steady_ddb_writes_per_event": 5.0,
        "steady_rest_per_event": 1.0,
    }
    assert not any(v.measured for v in inputs.values())
    # ... and the worker's own time per event is then the storm's (the model's fallback).
    model = fixed_model(lambda_gb_s_arm=1.0)
    assert "steady_worker_own_s_per_event" not in model.i


def test_steady_traffic_bills_the_measured_worker_time_per_event() -> None:
    base = fixed_model(lambda_gb_s_arm=1.0)
    own = base.i["worker_own_s_per_event"] + 0.05
    inputs = {**base.inputs, "steady_worker_own_s_per_event": cost_inputs.Input(own, "s", "measured: x")}
    model = cost_model.Model(inputs, FACTS, POLICIES, base.p)
    assert model.per_million(1) == pytest.approx(base.per_million(1) + 1e6 * 0.05 * 0.25)
    assert model.per_million_storm() == pytest.approx(base.per_million_storm())
