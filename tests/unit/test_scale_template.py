"""template.yaml's concurrency wiring for a large fleet: the intake keeps its own share of the account's
concurrency, the worker's queue starts a bounded number of workers, and both are parameters an operator
can change (the local stack resolves them exactly as CloudFormation would)."""

from __future__ import annotations

from pathlib import Path

from b24stack.intrinsics import Resolver
from b24stack.template import load_template

ROOT = Path(__file__).resolve().parents[2]


def _resolver(**params: str) -> tuple[dict, Resolver]:
    template = load_template(ROOT / "template.yaml")
    for name, value in params.items():
        template.data["Parameters"][name]["Default"] = value
    return template.data, Resolver(template, region="us-east-1", environ={})


def test_the_intake_reserves_concurrency_by_default_and_an_operator_can_reserve_none() -> None:
    data, resolver = _resolver()
    events = data["Resources"]["EventsFunction"]["Properties"]
    assert int(resolver.resolve_str(events["ReservedConcurrentExecutions"])) >= 10
    assert "account" in data["Parameters"]["EventsReservedConcurrency"]["Description"]
    data, resolver = _resolver(EventsReservedConcurrency="0")  # an account too small to reserve any
    resolved = resolver.resolve(data["Resources"]["EventsFunction"]["Properties"])
    assert "ReservedConcurrentExecutions" not in resolved


def test_the_worker_queue_starts_a_bounded_number_of_workers() -> None:
    data, resolver = _resolver(WorkerMaxConcurrency="7")
    source = data["Resources"]["EventWorkerFunction"]["Properties"]["Events"]["Queue"]["Properties"]
    assert int(resolver.resolve(source["ScalingConfig"])["MaximumConcurrency"]) == 7
    spec = data["Parameters"]["WorkerMaxConcurrency"]
    assert spec["MinValue"] >= 2 and spec["MaxValue"] <= 1000  # what SQS event sources accept


def test_a_failing_portals_events_are_retried_for_hours_by_default() -> None:
    data, resolver = _resolver()
    env = data["Resources"]["EventWorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert float(resolver.resolve_str(env["B24_RETRY_HOURS"])) >= 1
