"""Read claims on DynamoDB Local (AWS's engine): one worker's claim refuses another's, lapses by
itself, ends with the holder's read mark, and is given back (worker/read_claims.py)."""

from __future__ import annotations

from b24core.worker.read_claims import ReadClaims
from b24core.worker.read_marks import ReadMarks

DEALS = [("crm.deal.get", str(i)) for i in range(1, 61)]
TS = "100"  # the events' change time (portal clock)


def ask(keys: list) -> dict:
    return dict.fromkeys(keys, TS)


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def _pair(services, clock: Clock) -> tuple[ReadClaims, ReadClaims]:
    ddb, table = services.client("dynamodb"), services.resources["AppTable"]
    return ReadClaims(ddb, table, clock, owner="a"), ReadClaims(ddb, table, clock, owner="b")


def test_a_claimed_object_is_refused_to_another_worker_with_the_time_its_claim_runs(services, member_id):
    clock = Clock()
    a, b = _pair(services, clock)
    assert a.take(member_id, ask(DEALS[:40]), hold_s=30) == {}
    clock.t += 10
    refused = b.take(member_id, ask(DEALS[20:60]), hold_s=30)
    assert set(refused) == set(DEALS[20:40])  # the 20 that a holds; b got the other 20
    assert all(abs(r.left_s - 20.0) < 1e-6 and r.read_at is None for r in refused.values())
    assert b.held[member_id] == set(DEALS[40:60])
    # The owner itself may claim again (a second read of its own batch).
    assert a.take(member_id, ask(DEALS[:40]), hold_s=30) == {}


def test_a_claim_lapses_by_itself(services, member_id):
    clock = Clock()
    a, b = _pair(services, clock)
    a.take(member_id, ask(DEALS[:5]), hold_s=30)
    clock.t += 31  # a died holding them
    assert b.take(member_id, ask(DEALS[:5]), hold_s=30) == {}


def test_the_holders_read_mark_ends_its_claim_and_keeps_the_read_time(services, member_id):
    clock = Clock()
    a, b = _pair(services, clock)
    marks = ReadMarks(services.client("dynamodb"), services.resources["AppTable"])
    a.take(member_id, ask(DEALS[:3]), hold_s=30)
    marks.mark(member_id, dict.fromkeys(DEALS[:3], 101.0))  # a read too early to cover ts 100
    assert b.take(member_id, ask(DEALS[:3]), hold_s=30) == {}
    # A claim on a marked item keeps the mark: a later batch still skips what the read covered.
    assert marks.last_reads(member_id, DEALS[:3]) == dict.fromkeys(DEALS[:3], 101.0)


def test_claims_not_marked_are_given_back_and_another_workers_claim_is_left_alone(services, member_id):
    clock = Clock()
    a, b = _pair(services, clock)
    a.take(member_id, ask(DEALS[:4]), hold_s=30)
    a.release_unmarked({member_id: {DEALS[0]}})  # DEALS[0] was marked (its put ended the claim)
    assert b.take(member_id, ask(DEALS[1:4]), hold_s=30) == {}
    a.held[member_id] = {DEALS[1]}  # a believes it still holds one that b has now
    a.release(member_id, [DEALS[1]])
    assert set(a.take(member_id, ask([DEALS[1]]), hold_s=30)) == {DEALS[1]}  # still b's


def test_a_mark_written_since_the_batch_looked_refuses_the_claim_with_its_read_time(services, member_id):
    """The holder marked its read between this batch's look at the marks and its claim: the claim is
    refused with the mark's time, so the event is skipped instead of read a second time."""
    clock = Clock()
    _, b = _pair(services, clock)
    marks = ReadMarks(services.client("dynamodb"), services.resources["AppTable"])
    marks.mark(member_id, {DEALS[0]: 102.5, DEALS[1]: 101.5})  # read at 102.5 covers ts 100; 101.5 not
    refused = b.take(member_id, ask(DEALS[:2]), hold_s=30)
    assert set(refused) == {DEALS[0]} and refused[DEALS[0]].read_at == 102.5
    # An event whose change came after that read claims the object (it must be read again).
    assert b.take(member_id, {DEALS[0]: "200"}, hold_s=30) == {}


def test_a_failing_table_reads_everything(member_id):
    class Broken:
        def transact_write_items(self, **_: object) -> None:
            raise ConnectionError("table unreachable")

    claims = ReadClaims(Broken(), "T", Clock(), owner="a")
    assert claims.take(member_id, ask(DEALS[:3]), hold_s=30) == {}
