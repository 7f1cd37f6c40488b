"""A webhook-connected box with 200,000 deals through the local stack: polling and reconciliation finish
across runs of ChangePollFunction within the audit's request budget, and no item of the portal comes
near DynamoDB's 400 KB."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from b24core.delivery.audit_store import DynamoAuditStore
from b24core.portals.keys import portal_pk
from b24sim.entities import iso
from tests.e2e.conftest import wait_for
from tests.e2e.test_webhook_connect import cli  # noqa: F401 - the CLI fixture

DEALS = 200_000
RECONCILE_REQUESTS = 20  # the template's default (AuditReconcileRequests)


def _largest_item(stack: Any, member_id: str) -> int:
    client, largest, start = stack.services.client("dynamodb"), 0, None
    while True:
        kwargs: dict[str, Any] = {
            "TableName": stack.resources["AppTable"],
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": portal_pk(member_id)}},
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        answer = client.query(**kwargs)
        for item in answer["Items"]:
            size = 0
            for name, value in item.items():
                ((_, raw),) = value.items()
                size += len(name) + (
                    sum(len(str(v)) + 1 for v in raw) if isinstance(raw, list) else len(str(raw))
                )
            largest = max(largest, size)
        start = answer.get("LastEvaluatedKey")
        if not start:
            return largest


@pytest.mark.timeout(900)
def test_200000_deals_are_polled_and_reconciled_across_runs_within_the_budget(sim, stack, mirror, cli):  # noqa: F811
    box = sim.add_portal(profile="box", queue_blocked=True)
    box.rate = (50, 10)  # a quicker bucket than the default 2/s: the audit's own budget is what counts
    with sim.lock:
        for _ in range(DEALS):
            box.deals.add({"TITLE": "bulk"}, 1, sim.clock.now() - 86400)
    code, out = cli(
        "portals", "connect-webhook", "--incoming", box.add_incoming_webhook(["crm", "im"]), "--json"
    )
    assert code == 0, out
    member_id = json.loads(out)["member_id"]  # met through its webhook: a record of its own (wh-…)
    audits = DynamoAuditStore(stack.resources["AppTable"], stack.region, stack.dynamodb_endpoint)

    def rounds_until(done: Any, limit: int = 60) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        while len(runs) < limit:
            stack.fire_schedule("ChangePollFunction", "Poll")
            state = audits.get(member_id)
            kinds = {k["kind"]: k for k in (state.last.get("kinds") or [])} if state else {}
            runs.append(kinds.get("crm.deal", {}))
            if done(state, runs[-1]):
                return runs
            time.sleep(0.2)
        raise AssertionError(f"not finished in {limit} runs")

    # The first reconciliation learns every ID: across runs, each within the budget.
    first = rounds_until(lambda s, k: k.get("reconciled"))
    assert len(first) >= 4 and max(k.get("reconcile_requests", 0) for k in first) <= RECONCILE_REQUESTS

    # 1,000 changes since the last run: 500 a run (10 pages), every one reaches the mirror.
    changed = list(range(7, DEALS, 200))
    now = iso(sim.clock.now())
    for deal in changed:
        box.deals.update(deal, {"TITLE": f"changed {deal}"}, 1, sim.clock.now())
        box.deals.touch(deal, now)
    sim.clock.advance(2)
    sent = 0
    runs = 0
    while sent < len(changed) and runs < 20:
        answer = stack.fire_schedule("ChangePollFunction", "Poll")
        sent += int(answer.get("polled", 0))
        runs += 1
    assert sent == len(changed)
    wait_for(
        lambda: all(
            (mirror.get(member_id, str(d)) or {}).get("TITLE") == f"changed {d}" for d in changed[::50]
        ),
        timeout=300,
        what="the polled changes in the mirror",
    )

    # 200 deletions with no event: reconciliations find them (one may already be under way, past some
    # shards: the next one finds the rest), run after run, each within the budget.
    gone = list(range(3, DEALS, 1000))
    for deal in gone:
        box.deals.delete(deal)
    found: list[int] = []

    def all_found(state: Any, kind: dict[str, Any]) -> bool:
        found.append(int(kind.get("deletes_polled", 0)))
        time.sleep(0.3)  # reconciliations are due every 2 s in this stack
        return sum(found) >= len(gone)

    second = rounds_until(all_found, limit=120)
    assert max(k.get("reconcile_requests", 0) for k in second) <= RECONCILE_REQUESTS
    assert sum(found) == len(gone)
    assert _largest_item(stack, member_id) < 200_000  # far below DynamoDB's 400 KB
