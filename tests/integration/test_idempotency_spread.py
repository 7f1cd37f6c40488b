"""The worker's once-per-event guard records (its guard ledger, as EventWorkerFunction wires it)
spread over many partition keys: a storm's guard writes never queue up on one hot DynamoDB partition."""

from __future__ import annotations

from b24core.entry import wiring
from b24core.portals.keys import IDEMPOTENCY_PK, IDEMPOTENCY_SHARDS
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.worker.handlers import Registry


def _guard_keys(services, member_id: str) -> dict[str, str]:
    """sk -> pk of every guard record in the table (sk: the hash of the event's message)."""
    ddb = services.client("dynamodb")
    found: dict[str, str] = {}
    kwargs: dict = {
        "TableName": services.resources["AppTable"],
        "FilterExpression": "begins_with(pk, :p)",
        "ExpressionAttributeValues": {":p": {"S": IDEMPOTENCY_PK}},
    }
    while True:
        page = ddb.scan(**kwargs)
        for item in page.get("Items", []):
            found[item["sk"]["S"]] = item["pk"]["S"]
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_guard_records_of_a_storm_land_on_many_partition_keys_and_still_guard(
    services, member_id, deployed
) -> None:
    wiring.portal_store().save(
        Portal(member_id, "p.example", "https://p.example/rest/", state=PortalState.ACTIVE)
    )
    registry, effects = Registry(), []
    registry.on("ONCRMDEALUPDATE")(lambda event, ctx: effects.append(event.object_id))
    worker, context = deployed.worker(registry), deployed.context()
    before = set(_guard_keys(services, member_id))
    records = [deployed.record(member_id, deal) for deal in range(40)]
    assert worker({"Records": records}, context)["batchItemFailures"] == []
    assert sorted(effects, key=int) == [str(d) for d in range(40)]
    mine = {sk: pk for sk, pk in _guard_keys(services, member_id).items() if sk not in before}
    assert len(mine) == 40  # one guard record per event
    partitions = set(mine.values())
    assert len(partitions) >= 16  # 40 events over 64 shards: a single hot key would give 1
    assert all(pk.startswith(f"{IDEMPOTENCY_PK}#") for pk in partitions)
    assert len(partitions) <= IDEMPOTENCY_SHARDS
    # Spread, still a guard: the same records delivered again run no side effect twice.
    assert worker({"Records": records}, context)["batchItemFailures"] == []
    assert len(effects) == 40
