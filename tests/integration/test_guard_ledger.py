"""The worker's guard ledger on DynamoDB Local (AWS's own engine): a cancelled claim transaction names
each action's reason, with the item that failed its condition, so one request per hundred events tells
new, completed and in-progress events apart."""

from __future__ import annotations

import time

from b24core.worker.guard_ledger import COMPLETED, INPROGRESS, Claim, GuardLedger, guard_key


def _item(ddb, table, key):
    return ddb.get_item(
        TableName=table, Key={"pk": {"S": key.pk}, "sk": {"S": key.sk}}, ConsistentRead=True
    ).get("Item")


def test_claims_tell_new_completed_and_in_progress_events_apart_in_few_requests(services, member_id):
    table, ddb = services.resources["AppTable"], services.client("dynamodb")
    keys = {f"m{i}": guard_key({"member_id": member_id, "n": i}) for i in range(150)}
    sent: list[str] = []
    ddb.meta.events.register("provide-client-params.dynamodb.*", lambda model, **kw: sent.append(model.name))
    now_ms = int(time.time() * 1000)
    earlier, other = GuardLedger(ddb, table), GuardLedger(ddb, table)
    assert set(earlier.claim({m: keys[m] for m in ("m0", "m1")}, now_ms + 60_000).values()) == {Claim.CLAIMED}
    earlier.complete(keys["m0"], [])  # m0: handled before
    assert other.claim({"m2": keys["m2"]}, now_ms + 60_000) == {"m2": Claim.CLAIMED}  # m2: live elsewhere
    assert other.claim({"m3": keys["m3"]}, now_ms - 1) == {"m3": Claim.CLAIMED}  # m3: its claim expired
    sent.clear()

    ledger = GuardLedger(ddb, table)
    claims = ledger.claim(keys, now_ms + 60_000)
    assert claims["m0"] is Claim.DONE
    assert claims["m1"] is Claim.BUSY and claims["m2"] is Claim.BUSY
    assert claims["m3"] is Claim.CLAIMED  # a dead worker's claim is taken over
    assert {claims[f"m{i}"] for i in range(4, 150)} == {Claim.CLAIMED}
    # 150 claims, 2 transactions; the one holding m0-m2 is cancelled by their conditions and its
    # other 97 claims are sent again: 3 requests where Powertools sent 150 puts.
    assert sent == ["TransactWriteItems"] * 3
    assert _item(ddb, table, keys["m5"])["status"]["S"] == INPROGRESS

    ledger.complete(keys["m5"], [])
    assert _item(ddb, table, keys["m5"])["status"]["S"] == COMPLETED
    ledger.release([keys["m6"]])
    assert _item(ddb, table, keys["m6"]) is None  # its redelivery runs at once
    try:  # m2 is another worker's claim: completing it is refused, and nothing is written with it
        ledger.complete(
            keys["m2"], [{"Put": {"TableName": table, "Item": {"pk": {"S": member_id}, "sk": {"S": "x"}}}}]
        )
    except Exception as exc:
        assert "TransactionCanceled" in type(exc).__name__
    else:
        raise AssertionError("completed another worker's claim")
    assert ddb.get_item(TableName=table, Key={"pk": {"S": member_id}, "sk": {"S": "x"}}).get("Item") is None
