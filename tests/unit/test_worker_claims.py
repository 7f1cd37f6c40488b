"""Read claims in the worker's plan: an object another worker is reading is not read twice; its event
comes back and is skipped once that read is marked (worker/read_claims.py on DynamoDB Local:
tests/integration/test_read_claims.py)."""

from __future__ import annotations

import json

from b24core.bitrix.errors import QueryLimitExceeded
from b24core.worker.outcomes import DEFERRED
from b24core.worker.read_claims import Refusal

from .test_worker import FakeClient, FakeLimiter, FakeMarks, make, record


class SharedClaims:
    """The claims table of every worker (key -> owner), and one worker's view of it."""

    def __init__(self, table: dict, owner: str) -> None:
        self.table, self.owner, self.held = table, owner, {}
        self.read_at: dict = {}  # a mark the holder wrote after this batch looked
        self.released: list = []

    def renew_owner(self) -> None:
        self.held = {}

    def take(self, member_id, wanted, hold_s):
        refused = {}
        for key in wanted:
            holder = self.table.get((member_id, key))
            if holder not in (None, self.owner):
                refused[key] = Refusal(7.0, self.read_at.get((member_id, key)))
            else:
                self.table[(member_id, key)] = self.owner
                self.held.setdefault(member_id, set()).add(key)
        return refused

    def release(self, member_id, keys):
        for key in keys:
            if self.table.get((member_id, key)) == self.owner:
                del self.table[(member_id, key)]
                self.released.append(key)

    def release_unmarked(self, marked):
        for member_id, held in self.held.items():
            self.release(member_id, held - marked.get(member_id, set()))
        for member_id, keys in marked.items():  # the mark's put replaced the item: the claim ends
            for key in keys:
                self.table.pop((member_id, key), None)
        self.held = {}


def deal(n: int) -> tuple[str, str]:
    return ("crm.deal.get", str(n))


DEALS = {str(i): {"ID": str(i)} for i in range(1, 201)}


def storm(first: int, count: int, ts: int = 900) -> list[dict]:
    """A backlog: more reads than one request takes (claims are for backlogs, not lone reads)."""
    return [record(ts + n, "ONCRMDEALUPDATE", n) for n in range(first, first + count)]


def test_objects_another_worker_is_reading_are_not_read_and_come_back_to_be_skipped():
    table: dict = {("m1", deal(n)): "other" for n in (2, 3)}  # the other worker is reading 2 and 3
    marks = FakeMarks()
    client = FakeClient(DEALS, now=2000.0)
    worker, seen, requeued = make(client, marks=marks)
    worker.claims = SharedClaims(table, "me")
    out = worker({"Records": storm(1, 102)}, None)
    assert out["batchItemFailures"] == []
    assert client.batches == [50, 50]  # 100 reads: 2 and 3 not bought twice, the requests filled
    back = sorted(json.loads(body)["data"]["FIELDS"]["ID"] for body, _ in requeued)
    assert back == ["2", "3"] and {delay for _, delay in requeued} == {8}  # the claim's 7 s left + 1
    assert sorted(int(s[1]) for s in seen) == [n for n in range(1, 103) if n not in (2, 3)]
    assert "claimed" in DEFERRED  # counted as sent back, never as handled or failed
    # The other worker's read is marked (ending its claim); the returning events find it.
    marks.mark("m1", {deal(2): 2000.0, deal(3): 2000.0})
    del table[("m1", deal(2))], table[("m1", deal(3))]
    seen.clear()
    again = [record(950 + n, "ONCRMDEALUPDATE", n) for n in (2, 3)]
    assert worker({"Records": again}, None)["batchItemFailures"] == []
    assert client.batches == [50, 50] and seen == []  # skipped as read since: no second read


def test_a_claim_ends_with_the_mark_and_an_unmarked_claim_is_given_back():
    deals = {k: v for k, v in DEALS.items() if k != "7"}  # deal 7 is gone: read, no mark
    table: dict = {}
    worker, _, _ = make(FakeClient(deals, now=2000.0), marks=FakeMarks())
    worker.claims = claims = SharedClaims(table, "me")
    worker({"Records": storm(1, 50)}, None)
    assert table == {}  # 49 ended by their marks, 7 given back
    assert claims.released == [deal(7)]


def test_reads_stopped_by_the_budget_give_their_claims_back_at_once():
    table: dict = {}
    worker, _, requeued = make(FakeClient(error=QueryLimitExceeded("x")), limiter=FakeLimiter())
    worker.claims = claims = SharedClaims(table, "me")
    worker({"Records": storm(1, 50)}, None)
    assert len(requeued) == 50 and table == {} and len(claims.released) == 50


def test_without_claims_both_workers_read_the_object():
    """The mutation the claims prevent: two workers, one object, two reads."""
    a_client, b_client = FakeClient(DEALS), FakeClient(DEALS)
    table: dict = {}
    a, _, _ = make(a_client)
    b, b_seen, _ = make(b_client)
    a.claims, b.claims = SharedClaims(table, "a"), SharedClaims(table, "b")
    # a is reading deal 5 (its claim is taken) when b's batch arrives with another event of it.
    a.claims.take("m1", {deal(5): "900"}, 30)
    b({"Records": storm(1, 51)}, None)
    assert b_client.batches == [50] and "5" not in {s[1] for s in b_seen}  # left out, request filled
    b.claims = None
    b_seen.clear()
    b({"Records": storm(1, 51, ts=2000)}, None)
    assert ("ONCRMDEALUPDATE", "5", DEALS["5"]) in b_seen  # read a second time


def test_lone_reads_with_room_in_the_budget_are_read_at_once_and_unclaimed():
    """Steady traffic: a claim costs two write units per object; a few reads go out at once."""
    client = FakeClient(DEALS)
    worker, seen, requeued = make(client)
    worker.claims = claims = SharedClaims({("m1", deal(2)): "other"}, "me")
    worker({"Records": storm(1, 3)}, None)
    assert client.batches == [3] and claims.held == {} and requeued == []


def test_a_request_short_of_what_others_hold_is_filled_from_the_queue():
    """Refused objects leave room in the request: it is filled with the next reads, so the portal pays
    for full requests only (a storm's 4,000 deals in 80, not 83)."""
    table: dict = {("m1", deal(n)): "other" for n in (3, 30, 77)}
    client = FakeClient(DEALS, now=2000.0)
    worker, seen, requeued = make(client)
    worker.claims = SharedClaims(table, "me")
    worker({"Records": storm(1, 100)}, None)
    assert client.batches == [50]  # 97 reads: one full request (without refilling: 47)
    claimed = sorted(int(json.loads(b)["data"]["FIELDS"]["ID"]) for b, d in requeued if d == 8)
    held = [b for b, d in requeued if d == 1]  # the part-filled rest waits for company (MAX_HOLDS)
    assert claimed == [3, 30, 77] and len(held) == 47 and len(seen) == 50


def test_an_object_whose_read_was_marked_meanwhile_is_skipped_not_sent_back():
    table: dict = {("m1", deal(2)): "other"}
    client = FakeClient(DEALS, now=2000.0)
    worker, seen, requeued = make(client)
    worker.claims = claims = SharedClaims(table, "me")
    claims.read_at[("m1", deal(2))] = 1950.0  # the other worker's read, marked: it covers ts 902
    out = worker({"Records": storm(1, 51)}, None)
    assert out["batchItemFailures"] == [] and requeued == []
    assert client.batches == [50] and "2" not in [s[1] for s in seen] and len(seen) == 50


def test_an_object_whose_item_keeps_conflicting_is_left_for_later_not_read_unclaimed():
    """Someone is writing the item right now (the holder's mark, another claim): reading it anyway was
    how a storm still bought six reads twice."""
    from b24core.worker.read_claims import ReadClaims

    class Conflicting:
        calls = 0

        def transact_write_items(self, TransactItems):
            self.calls += 1
            error = {"Code": "TransactionCanceledException", "Message": "conflict"}
            reasons = [{"Code": "TransactionConflict"} for _ in TransactItems]
            exc = RuntimeError("cancelled")
            exc.response = {"Error": error, "CancellationReasons": reasons}  # type: ignore[attr-defined]
            raise exc

    client = Conflicting()
    claims = ReadClaims(client, "T", lambda: 1000.0, owner="me")
    refused = claims.take("m1", {deal(1): "900", deal(2): "900"}, 30)
    assert set(refused) == {deal(1), deal(2)} and all(r.left_s == 0.0 for r in refused.values())
    assert client.calls == 3 and claims.held.get("m1", set()) == set()


def test_a_worker_alone_on_a_portal_claims_nothing():
    """Claims cost a transaction per request: with no other worker spending the portal's budget there
    is no read to share."""
    limiter = FakeLimiter()
    limiter.others = False
    client = FakeClient(DEALS, now=2000.0)
    worker, _, _ = make(client, limiter=limiter)
    worker.claims = claims = SharedClaims({("m1", deal(2)): "other"}, "me")
    worker({"Records": storm(1, 100)}, None)
    assert client.batches == [50, 50] and claims.held == {}


def test_at_the_clouds_own_pace_reads_are_not_claimed():
    """At 2 requests a second a read bought twice costs half a second of budget, less than the
    claim's transaction on the read path: shared or not, nothing is claimed."""
    limiter = FakeLimiter()
    limiter.request_s_value = 0.5
    client = FakeClient(DEALS, now=2000.0)
    worker, _, _ = make(client, limiter=limiter)
    worker.claims = claims = SharedClaims({("m1", deal(2)): "other"}, "me")
    worker({"Records": storm(1, 100)}, None)
    assert client.batches == [50, 50] and claims.held == {}
