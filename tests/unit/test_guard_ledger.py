"""The guard ledger's reading of a cancelled claim transaction (DynamoDB's CancellationReasons, one per
action in order): conflicts are claimed again a bounded number of times, then their records fail."""

from __future__ import annotations

from botocore.exceptions import ClientError

from b24core.worker.guard_ledger import Claim, GuardLedger, guard_key


def _cancelled(*codes: str | dict) -> ClientError:
    reasons = [c if isinstance(c, dict) else {"Code": c} for c in codes]
    return ClientError(
        {"Error": {"Code": "TransactionCanceledException", "Message": "x"}, "CancellationReasons": reasons},
        "TransactWriteItems",
    )


class Client:
    def __init__(self, answers):
        self.answers, self.sent = list(answers), []

    def transact_write_items(self, TransactItems):
        self.sent.append([a["Put"]["Item"]["sk"]["S"] for a in TransactItems])
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer


def test_a_conflicting_claim_is_sent_again_and_the_decided_ones_are_not():
    keys = {m: guard_key({"m": m}) for m in ("a", "b", "c", "d")}
    done = {"Code": "ConditionalCheckFailed", "Item": {"status": {"S": "COMPLETED"}}}
    busy = {"Code": "ConditionalCheckFailed", "Item": {"status": {"S": "INPROGRESS"}}}
    client = Client([_cancelled("None", "TransactionConflict", done, busy)])
    claims = GuardLedger(client, "t").claim(keys, 0)
    assert claims == {"a": Claim.CLAIMED, "b": Claim.CLAIMED, "c": Claim.DONE, "d": Claim.BUSY}
    assert client.sent[1] == [keys["a"].sk, keys["b"].sk]  # only the undecided ones again


def test_claims_that_keep_conflicting_fail_their_records_after_a_few_rounds():
    keys = {"a": guard_key({"m": "a"})}
    client = Client([_cancelled("TransactionConflict")] * 10)
    assert GuardLedger(client, "t").claim(keys, 0) == {"a": Claim.FAILED}
    assert len(client.sent) == 4  # bounded


def test_a_ledger_that_does_not_answer_fails_the_records_it_could_not_claim():
    keys = {"a": guard_key({"m": "a"})}
    error = ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "TransactWriteItems")
    assert GuardLedger(Client([error]), "t").claim(keys, 0) == {"a": Claim.FAILED}
