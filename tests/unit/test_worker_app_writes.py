"""The app's storage writes of a worker batch: kept per portal, written together at the batch's end,
and never answered successful before they were written."""

from __future__ import annotations

import threading
from dataclasses import replace

from b24core.portals.app_data import InMemoryAppStorage
from b24core.worker.app_writes import BufferedAppStorage
from b24core.worker.dispatch import Worker
from b24core.worker.guard_ledger import InMemoryGuardLedger
from b24core.worker.handlers import Registry
from tests.unit.test_worker import PORTAL, FakeClient, FakeLimiter, record


class BatchStorage(InMemoryAppStorage):
    """In-memory app data that counts its single and batched writes."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.single, self.batches, self.fail = 0, [], fail

    def put(self, key, value):
        self.single += 1
        super().put(key, value)

    def write_many(self, writes):
        if self.fail:
            self.fail = self.fail if self.fail is True else self.fail - 1
            raise RuntimeError("throttled")
        self.batches.append(len(writes))
        for key, value in writes.items():
            if value is None:
                super().delete(key)
            else:
                super().put(key, value)


def _worker(registry: Registry, guard=None) -> Worker:
    deals = {str(i): {"ID": str(i), "TITLE": f"d{i}"} for i in range(40)}
    return Worker(
        registry,
        load_portal=lambda m: PORTAL,
        make_client=lambda p: FakeClient(deals),
        limiter=FakeLimiter(),
        requeue=lambda bodies, delay: set(),
        guard=guard,
        wait=lambda s: None,
    )


def _mirror(registry: Registry) -> None:
    @registry.on("ONCRMDEALUPDATE", fetch="crm.deal.get", idempotent=True)
    def save(event, ctx):
        ctx.storage.put(f"deal/{event.object_id}", event.object)
        ctx.storage.put(f"deal/{event.object_id}/history/1", {"TITLE": event.object["TITLE"]})


def test_a_batchs_storage_writes_go_out_together_at_its_end() -> None:
    storage, registry = BatchStorage(), Registry()
    registry.storage_factory = lambda member_id: storage
    _mirror(registry)
    result = _worker(registry)({"Records": [record(i, "ONCRMDEALUPDATE", i) for i in range(30)]}, None)
    assert result["batchItemFailures"] == []
    assert storage.single == 0 and storage.batches == [60]  # 60 items, one flush (BatchWriteItem of 25s)
    assert storage.get("deal/7") == {"ID": "7", "TITLE": "d7"}


def test_records_whose_writes_did_not_go_out_are_answered_failed() -> None:
    storage, registry = BatchStorage(fail=True), Registry()
    registry.storage_factory = lambda member_id: storage
    _mirror(registry)
    result = _worker(registry)({"Records": [record(i, "ONCRMDEALUPDATE", i) for i in range(3)]}, None)
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == ["msg-0", "msg-1", "msg-2"]
    assert storage.data == {}


class TransactStorage(BatchStorage):
    """Also says its writes as transaction actions, which the guard ledger sends with its own."""

    def write_actions(self, writes):
        return [{"Write": (key, value)} for key, value in writes.items()]


class CommittingLedger(InMemoryGuardLedger):
    """Applies the app writes it completes with, in the same step (what one transaction does)."""

    def __init__(self, storage, fail=False):
        super().__init__()
        self.storage, self.fail = storage, fail

    def complete(self, key, writes):
        if self.fail:
            raise RuntimeError("transaction cancelled")
        for action in writes:
            k, v = action["Write"]
            self.storage.put(k, v)
        super().complete(key, writes)


def _counter(registry: Registry) -> None:
    @registry.on("ONCRMDEALUPDATE")
    def count(event, ctx):  # a delta: not idempotent
        n = (ctx.storage.get(f"calls/{event.object_id}") or {"n": 0})["n"]
        ctx.storage.put(f"calls/{event.object_id}", {"n": n + 1})


def test_a_guarded_events_writes_go_out_with_its_guards_completion_in_one_step() -> None:
    storage, registry = TransactStorage(), Registry()
    registry.storage_factory = lambda member_id: storage
    _counter(registry)
    ledger = CommittingLedger(storage)
    records = [record(1, "ONCRMDEALUPDATE", 4), record(2, "ONCRMDEALUPDATE", 4)]  # two events of deal 4
    assert _worker(registry, guard=ledger)({"Records": records}, None)["batchItemFailures"] == []
    assert [len(w) for w in ledger.completed_with] == [1, 1]  # each event's write rode with its mark
    assert storage.batches == [] and storage.single == 2  # nothing written outside the transactions
    assert storage.get("calls/4") == {"n": 2}  # the second event read the first one's committed write


def test_a_guarded_events_writes_are_dropped_when_its_completion_fails() -> None:
    """Written without its guard completed, its redelivery would write the effect a second time."""
    storage, registry = TransactStorage(), Registry()
    registry.storage_factory = lambda member_id: storage
    _counter(registry)
    ledger = CommittingLedger(storage, fail=True)
    result = _worker(registry, guard=ledger)({"Records": [record(1, "ONCRMDEALUPDATE", 4)]}, None)
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == ["msg-1"]
    assert storage.data == {} and storage.batches == []
    assert ledger.items == {}  # its claim released: the redelivery runs it at once


def test_a_guarded_handlers_writes_land_before_its_guard_records_it_completed() -> None:
    """A storage that cannot say its writes as transaction actions: written first, completed after."""
    storage, registry = BatchStorage(), Registry()
    registry.storage_factory = lambda member_id: storage
    _counter(registry)
    at_completion = []

    class Ledger(InMemoryGuardLedger):
        def complete(self, key, writes):
            at_completion.append(dict(storage.data))
            super().complete(key, writes)

    result = _worker(registry, guard=Ledger())({"Records": [record(1, "ONCRMDEALUPDATE", 4)]}, None)
    assert result["batchItemFailures"] == []
    assert at_completion and "calls/4" in at_completion[0]


def test_the_buffer_reads_its_own_writes_over_the_stored_data() -> None:
    inner = InMemoryAppStorage()
    inner.put("a/1", {"v": 1})
    inner.put("a/2", {"v": 2})
    buffer = BufferedAppStorage(inner)
    buffer.put("a/3", {"v": 3})
    buffer.delete("a/1")
    buffer.put("a/2", {"v": 22})
    assert buffer.get("a/1") is None and buffer.get("a/2") == {"v": 22}
    assert list(buffer.items("a/")) == [("a/2", {"v": 22}), ("a/3", {"v": 3})]
    assert inner.get("a/1") == {"v": 1}  # nothing written before the flush
    buffer.flush()
    assert list(inner.items("a/")) == [("a/2", {"v": 22}), ("a/3", {"v": 3})]
    assert buffer.pending == 0


def test_portals_are_read_at_once_and_each_portal_from_one_thread_only() -> None:
    """Portal A's read waits until portal B's read has started: read one after the other, the barrier
    would break and both portals' events fail. No portal is ever read from two threads at once."""
    barrier, lock, inside, most = threading.Barrier(2, timeout=5), threading.Lock(), {}, {}

    class Client(FakeClient):
        def batch(self, commands, halt=False):
            with lock:
                inside[self.member_id] = inside.get(self.member_id, 0) + 1
                most[self.member_id] = max(most.get(self.member_id, 0), inside[self.member_id])
            try:
                barrier.wait()
                return super().batch(commands, halt)
            finally:
                with lock:
                    inside[self.member_id] -= 1

    def client(portal):
        made = Client({str(i): {"ID": str(i), "TITLE": f"d{i}"} for i in range(60)})
        made.member_id = portal.member_id
        return made

    storage, registry = BatchStorage(), Registry()
    registry.storage_factory = lambda member_id: storage
    _mirror(registry)
    worker = _worker(registry)
    worker.load_portal = lambda m: replace(PORTAL, member_id=m)
    worker.make_client = client
    records = [record(i, "ONCRMDEALUPDATE", i, member_id="a") for i in range(50)]
    records += [record(100 + i, "ONCRMDEALUPDATE", i, member_id="b") for i in range(50)]
    assert worker({"Records": records}, None)["batchItemFailures"] == []
    assert most == {"a": 1, "b": 1}


def test_a_guarded_handlers_writes_that_failed_are_not_written_later_in_the_batch() -> None:
    """Its guard let the event go again; writing its effect at the batch's end would repeat it."""
    storage, registry = BatchStorage(fail=1), Registry()  # DynamoDB answers again by the batch's end
    registry.storage_factory = lambda member_id: storage
    _counter(registry)
    ledger = InMemoryGuardLedger()
    result = _worker(registry, guard=ledger)({"Records": [record(1, "ONCRMDEALUPDATE", 4)]}, None)
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == ["msg-1"]
    assert storage.data == {}
    assert ledger.items == {}  # not completed, claim released


def test_a_guarded_events_committed_write_is_not_overwritten_by_an_older_pending_one() -> None:
    """An idempotent handler wrote a key earlier in the batch (pending till its end); a guarded event
    read it and wrote the key again, committed at once. The batch's end must not put the older back."""
    storage, registry = TransactStorage(), Registry()
    registry.storage_factory = lambda member_id: storage

    @registry.on("ONCRMCONTACTUPDATE", idempotent=True)
    def state(event, ctx):
        ctx.storage.put("total", {"n": 10})

    @registry.on("ONCRMDEALUPDATE")
    def add(event, ctx):
        ctx.storage.put("total", {"n": ctx.storage.get("total")["n"] + 1})

    records = [record(1, "ONCRMCONTACTUPDATE", 1), record(2, "ONCRMDEALUPDATE", 4)]
    assert (
        _worker(registry, guard=CommittingLedger(storage))({"Records": records}, None)["batchItemFailures"]
        == []
    )
    assert storage.get("total") == {"n": 11}
