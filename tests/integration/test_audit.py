"""The change audit against the simulator over HTTP (an incoming webhook's client): what it sends when
events did not arrive, what it leaves alone when they did, the overlap that finds a late commit, nothing
lost when SQS refuses, deletions by a resumable reconciliation, and its items on DynamoDB Local."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from b24core.bitrix.webhook import parse_incoming
from b24core.capabilities.objects import catalog
from b24core.delivery.audit import ChangeAudit
from b24core.delivery.audit_store import Feed
from b24core.delivery.known_ids import SHARD, InMemoryKnownIds
from b24core.events.message import QueuedEvent
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.tokens.client import PortalClient
from b24core.worker.seen_marks import InMemorySeenMarks, Seen
from b24sim import Simulator
from b24sim.entities import iso

DEAL = catalog()["crm.deal"]
CONTACT = catalog()["crm.contact"]
ALL = {*DEAL.events, *CONTACT.events}


@dataclass
class Sink:
    """Stands for SQS: keeps what it accepts; ``refuse`` makes it take nothing."""

    sent: list[QueuedEvent] = field(default_factory=list)
    refuse: bool = False

    def __call__(self, messages: dict[str, QueuedEvent]) -> set[str]:
        if self.refuse:
            return set()
        self.sent.extend(messages.values())
        return set(messages)

    def take(self) -> list[tuple[str, str]]:
        out = [(m.event, m.data["FIELDS"]["ID"]) for m in self.sent]
        self.sent.clear()
        return sorted(out)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator("local.audit-test", "audit-test-secret") as s:
        yield s


@pytest.fixture
def box(sim: Simulator) -> Any:
    return sim.add_portal(profile="box", queue_blocked=True)


def webhook_client(box: Any) -> PortalClient:
    record = Portal(box.member_id, box.domain, box.client_endpoint, state=PortalState.ACTIVE)
    hook = parse_incoming(box.add_incoming_webhook(["crm"]), local=True)
    return PortalClient(record, keeper=None, webhook=hook)  # type: ignore[arg-type]


@dataclass
class Auditor:
    """One portal's audit with its feeds kept between runs, as the audit round keeps them."""

    sim: Simulator
    client: PortalClient
    audit: ChangeAudit
    feeds: dict[str, Feed] = field(default_factory=dict)
    since: float = 0.0

    def run(self, *, polling: bool = True, grace: float = 0, specs: tuple[Any, ...] = (DEAL,)) -> Any:
        self.feeds, result = self.audit.run(
            self.client,
            self.client.portal.member_id,
            self.client.portal.domain,
            self.feeds,
            list(specs),
            ALL,
            grace_s=grace,
            polling=polling,
            since=self.since,
        )
        return result


def auditor(sim: Simulator, box: Any, sink: Sink, **kw: Any) -> tuple[Auditor, InMemorySeenMarks]:
    marks = InMemorySeenMarks()
    kw.setdefault("reconcile_every_s", 10**11)
    audit = ChangeAudit(marks, InMemoryKnownIds(), sink, clock=sim.clock.now, **kw)
    return Auditor(sim, webhook_client(box), audit, since=sim.clock.now() + 300), marks


def arrived(marks: InMemorySeenMarks, box: Any, deal: int, at: float, source: str = "online") -> None:
    """The worker was handed an event of this deal stamped ``at`` (what seen marks record)."""
    marks.mark(box.member_id, {("crm.deal", deal): Seen.of(at, source, deleted=False)})


def test_polling_sends_adds_and_updates_once_each_across_the_overlap(sim, box):
    sink = Sink()
    a, _ = auditor(sim, box, sink)
    assert a.run().total("polled") == 0 and sink.take() == []
    first = box.ui_deal_add({"TITLE": "a"})
    sim.clock.advance(1)  # the second of the change is over on the portal
    assert a.run().total("polled") == 1
    assert sink.take() == [("ONCRMDEALADD", str(first))]
    sim.clock.advance(5)
    a.run()  # the overlap lists it again: not sent twice
    assert sink.take() == []
    box.ui_deal_update(first, {"TITLE": "b"})
    second = box.ui_deal_add({"TITLE": "c"})
    sim.clock.advance(1)
    a.run()
    assert sink.take() == [("ONCRMDEALADD", str(second)), ("ONCRMDEALUPDATE", str(first))]
    assert all(m.source == "poll" for m in sink.sent)
    sim.clock.advance(30)
    a.run()
    assert sink.take() == []


def test_a_change_in_the_same_second_as_the_last_run_is_not_lost(sim, box):
    sink = Sink()
    a, _ = auditor(sim, box, sink)
    a.run()
    deal = box.ui_deal_add({"TITLE": "a"})
    a.run()  # the portal's second is still running: the change is left for the next run
    assert sink.take() == []
    box.ui_deal_update(deal, {"TITLE": "b"})  # the same second: the same DATE_MODIFY
    sim.clock.advance(1)
    a.run()
    assert sink.take() == [("ONCRMDEALADD", str(deal))]
    sim.clock.advance(1)
    a.run()
    assert sink.take() == []


def test_changes_whose_events_arrived_are_left_alone_and_the_others_sent_as_missed(sim, box):
    sink = Sink()
    a, marks = auditor(sim, box, sink)
    a.run(polling=False, grace=120)
    delivered = box.ui_deal_add({"TITLE": "event came"})
    arrived(marks, box, delivered, sim.clock.now())
    lost = box.ui_deal_add({"TITLE": "event lost"})
    sim.clock.advance(60)
    young = a.run(polling=False, grace=120)  # both younger than the grace period: nothing judged yet
    assert (young.total("judged"), young.total("young"), sink.take()) == (0, 2, [])
    sim.clock.advance(61)
    found = a.run(polling=False, grace=120)
    assert (found.total("judged"), found.total("delivered"), found.total("missed")) == (2, 1, 1)
    assert found.total("by_event") == 1
    assert sink.take() == [("ONCRMDEALADD", str(lost))]
    # An update whose event was lost, of a deal the app heard of: sent as the update it was.
    box.ui_deal_update(delivered, {"TITLE": "changed"})
    sim.clock.advance(121)
    again = a.run(polling=False, grace=120)
    assert again.total("missed") == 1 and sink.take() == [("ONCRMDEALUPDATE", str(delivered))]
    # The audit's own sending is no proof of delivery (by_event counts only real events).
    marks.mark(box.member_id, {("crm.deal", delivered): Seen.of(sim.clock.now(), "audit", False)})
    box.ui_deal_update(lost, {"TITLE": "x"})
    arrived(marks, box, lost, sim.clock.now())
    sim.clock.advance(121)
    last = a.run(polling=False, grace=120)
    assert (last.total("missed"), last.total("by_event")) == (0, 1)


def test_a_late_commit_inside_the_overlap_is_found(sim, box):
    """A transaction that began before the cursor and became visible after the audit moved past it: its
    modification time is older than rows already judged. Only the overlap (cursor - overlap_s) finds it;
    filtering from the cursor itself would lose it for good."""
    sink = Sink()
    a, _ = auditor(sim, box, sink, overlap_s=120)
    a.run()
    early = box.ui_deal_add({"TITLE": "committed late"})  # its row exists, not yet visible...
    box.deals.touch(early, iso(sim.clock.now()))
    hidden = box.deals._items.pop(early)  # ...to any list
    box.deals._ids.remove(early)
    sim.clock.advance(30)
    later = box.ui_deal_add({"TITLE": "committed at once"})
    sim.clock.advance(1)
    a.run()
    assert sink.take() == [("ONCRMDEALADD", str(later))]  # the cursor is now past the early change
    assert a.feeds["crm.deal"].cursor == box.deals.get(later)["DATE_MODIFY"]
    box.deals._items[early] = hidden  # the transaction commits: DATE_MODIFY 31 s before the cursor
    box.deals._ids.insert(0, early)
    box.deals._ids.sort()
    a.run()
    assert sink.take() == [("ONCRMDEALADD", str(early))]


def test_nothing_is_lost_when_sqs_refuses_and_the_page_cap_only_delays(sim, box):
    sink = Sink()
    a, _ = auditor(sim, box, sink, max_pages=1)
    a.run()
    deals = [box.ui_deal_add({"TITLE": f"d{i}"}) for i in range(120)]
    sim.clock.advance(1)
    sink.refuse = True
    refused = a.run()
    assert refused.incomplete and sink.take() == []
    assert a.feeds["crm.deal"].cursor == a.feeds["crm.deal"].cursor  # unchanged by what SQS refused
    sink.refuse = False
    got: list[tuple[str, str]] = []
    for _ in range(5):  # one page a run: three runs for 120 changes
        a.run()
        got += sink.take()
    assert sorted(int(i) for _, i in got) == deals and len(got) == 120


def test_deletions_are_found_by_a_reconciliation_that_resumes_across_runs(sim, box):
    sink = Sink()
    a, marks = auditor(sim, box, sink, reconcile_requests=4)
    # IDs in three shards, with an empty shard between (skipped by one request, not listed).
    ids = [box.ui_deal_add({"TITLE": f"d{i}"}) for i in range(3)]
    box.deals._next_id = 2 * SHARD + 5
    far = [box.ui_deal_add({"TITLE": "far"}) for _ in range(2)]
    sim.clock.advance(1)
    a.since = sim.clock.now() - 400  # the first audit lists them: the audit knows them
    a.run()
    sink.take()
    a.audit.reconcile_every_s = 0  # a reconciliation is due from now on
    box.ui_deal_delete(ids[1])
    marks.mark(box.member_id, {("crm.deal", ids[1]): Seen.of(sim.clock.now(), "online", True)})
    box.ui_deal_delete(ids[2])  # its delete event never came
    box.ui_deal_delete(far[0])  # nor this one's
    results = []
    for _ in range(4):
        results.append(a.run())
        if any(k.reconciled for k in results[-1].kinds):
            break
    assert len(results) >= 2  # 4 requests a run: one shard, then the skip and the next shard
    assert all(r.total("requests") <= 4 + 1 for r in results)  # the budget (+ the changes listing)
    assert sink.take() == [("ONCRMDEALDELETE", str(far[0])), ("ONCRMDEALDELETE", str(ids[2]))]
    assert sum(r.total("deletes_polled") for r in results) == 2
    assert a.feeds["crm.deal"].reconcile_from == -1


def test_a_second_kind_is_audited_with_its_own_cursor(sim, box):
    sink = Sink()
    a, _ = auditor(sim, box, sink)
    a.run(specs=(DEAL, CONTACT))
    contact = box.ui_add("crm.contact", {"NAME": "Ann"})
    deal = box.ui_deal_add({"TITLE": "d"})
    sim.clock.advance(1)
    result = a.run(specs=(DEAL, CONTACT))
    assert [k.kind for k in result.kinds] == ["crm.deal", "crm.contact"]
    assert sink.take() == [("ONCRMCONTACTADD", str(contact)), ("ONCRMDEALADD", str(deal))]
    assert set(a.feeds) == {"crm.deal", "crm.contact"}


# ---------------------------------------------------------------- on DynamoDB Local
def _dynamo(services: Any) -> Any:
    import boto3

    return boto3.client("dynamodb", region_name=services.region, endpoint_url=services.dynamodb_endpoint)


def test_audit_state_known_ids_and_seen_marks_on_dynamodb_local(services, member_id):
    from b24core.delivery.audit_store import AuditState, DynamoAuditStore, schedule_audit
    from b24core.delivery.known_ids import DynamoKnownIds
    from b24core.portals.keys import AUDIT_PARTITION
    from b24core.portals.versioned import StaleWrite
    from b24core.worker.seen_marks import SeenMarks

    table = services.resources["AppTable"]
    store = DynamoAuditStore(table, services.region, services.dynamodb_endpoint)
    feed = Feed("2026-01-01T00:00:00+00:00", ("1@2026-01-01T00:00:00+00:00",), 1767225600, 20000, 5, 3)
    first = store.save(AuditState(member_id, {"crm.deal": feed}, next_at=100, strikes=1))
    assert store.get(member_id) == first and first.feeds["crm.deal"] == feed
    assert member_id in store.due(AUDIT_PARTITION, 100) and member_id not in store.due(AUDIT_PARTITION, 99)
    store.save(first)
    with pytest.raises(StaleWrite):
        store.save(first)
    schedule_audit(store, member_id, 500)  # already scheduled: left alone
    assert store.get(member_id).next_at == 100

    known = DynamoKnownIds(_dynamo(services), table)
    known.add(member_id, "crm.deal", [1, 2, SHARD + 3])
    known.add(member_id, "crm.deal", [2, 4])
    assert known.shard(member_id, "crm.deal", 0) == {1, 2, 4}
    assert known.shards(member_id, "crm.deal") == [0, 1]
    known.replace(member_id, "crm.deal", 1, set())
    assert known.shards(member_id, "crm.deal") == [0]

    marks = SeenMarks(_dynamo(services), table)
    marks.mark(member_id, {("crm.deal", 7): Seen(10.0, 10.0, 0.0), ("crm.deal", 8): Seen(5.0, 0.0, 6.0)})
    assert marks.seen(member_id, "crm.deal", [7, 8, 9]) == {7: Seen(10.0, 10.0, 0.0), 8: Seen(5.0, 0.0, 6.0)}


def _largest_item(services: Any, member_id: str) -> int:
    """The size of the portal's largest item, as DynamoDB counts it (names + values), roughly."""
    from b24core.portals.keys import portal_pk

    client, largest, query = _dynamo(services), 0, None
    while True:
        kwargs: dict[str, Any] = {
            "TableName": services.resources["AppTable"],
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": portal_pk(member_id)}},
        }
        if query:
            kwargs["ExclusiveStartKey"] = query
        answer = client.query(**kwargs)
        for item in answer["Items"]:
            size = 0
            for name, value in item.items():
                ((kind, raw),) = value.items()
                size += len(name) + (
                    sum(len(str(v)) + 1 for v in raw) if isinstance(raw, list) else len(str(raw))
                )
            largest = max(largest, size)
        query = answer.get("LastEvaluatedKey")
        if not query:
            return largest


def test_a_portal_of_200000_deals_is_polled_and_reconciled_across_runs_within_the_budget(
    sim, box, services, member_id
):
    from b24core.delivery.known_ids import DynamoKnownIds
    from b24core.worker.seen_marks import SeenMarks

    table = services.resources["AppTable"]
    sink = Sink()
    audit = ChangeAudit(
        SeenMarks(_dynamo(services), table),
        DynamoKnownIds(_dynamo(services), table),
        sink,
        max_pages=10,
        reconcile_every_s=10**11,
        reconcile_requests=20,
        clock=sim.clock.now,
    )
    a = Auditor(sim, webhook_client(box), audit, since=sim.clock.now() + 300)
    a.client.portal = Portal(member_id, box.domain, box.client_endpoint, state=PortalState.ACTIVE)
    box.rate = (10**6, 10**6)  # the portal's bucket is not what this test measures
    with sim.lock:
        for _ in range(200_000):
            box.deals.add({"TITLE": "bulk"}, 1, sim.clock.now())
    sim.clock.advance(3600)
    now = iso(sim.clock.now())
    for deal in range(1, 200_001, 200):  # 1,000 changes since the last run
        box.deals.touch(deal, now)
    sim.clock.advance(1)
    a.since = sim.clock.now() - 301  # the cursor starts just before those changes

    polled, runs = 0, 0
    while polled < 1000 and runs < 10:
        polled += a.run().total("polled")
        runs += 1
    assert polled == 1000 and runs >= 2  # 500 changes a run (10 pages): two runs, no change lost
    sink.take()

    def reconcile() -> tuple[int, list[int]]:
        requests, runs, finished = [], 0, False
        while not finished and runs < 20:
            result = a.run()
            requests.append(result.total("reconcile_requests"))
            finished = any(k.reconciled for k in result.kinds)
            runs += 1
        assert finished
        return runs, requests

    audit.reconcile_every_s = 0
    reconcile()  # the first one learns every ID the portal has (nothing is gone yet)
    assert sink.take() == []
    for deal in range(3, 200_001, 1000):  # 200 deletions with no event
        box.deals.delete(deal)
    sim.clock.advance(audit.overlap_s + 1)  # past the burst's overlap: a listing is one request again
    runs, requests = reconcile()
    assert runs >= 4  # 20 shards of 10,000 IDs, 4 requests each, 20 requests a run
    assert max(requests) <= 20  # the budget the settings give one reconciliation run
    audit.reconcile_every_s = 3600
    assert a.run().total("requests") == 1  # a quiet portal after the burst: one listing request
    assert sorted(int(i) for _, i in sink.take()) == list(range(3, 200_001, 1000))
    assert _largest_item(services, member_id) < 400_000 / 2  # every item far below DynamoDB's 400 KB


def test_a_spent_budget_ends_a_run_early_and_keeps_what_it_reconciled(sim, box):
    from b24core.bitrix.errors import QueryLimitExceeded

    sink = Sink()
    a, _ = auditor(sim, box, sink, reconcile_requests=40)
    with sim.lock:
        for _ in range(3 * SHARD):  # three shards of IDs
            box.deals.add({"TITLE": "bulk"}, 1, sim.clock.now() - 3600)
    a.run()
    a.audit.reconcile_every_s = 0
    allowance = {"left": 0}

    def spend(method: str) -> None:  # the shared budget: a few requests a run, then spent
        if allowance["left"] <= 0:
            raise QueryLimitExceeded("spent")
        allowance["left"] -= 1

    a.audit.spend = spend
    froms = []
    for _ in range(6):
        allowance["left"] = 6  # one listing + one shard (4) + one more request that finds it spent
        result = a.run()
        assert result.kinds[0].budget_spent or result.kinds[0].reconciled
        froms.append(a.feeds["crm.deal"].reconcile_from)
        if result.kinds[0].reconciled:
            break
    assert froms[:3] == [SHARD, 2 * SHARD, 3 * SHARD]  # a shard a run, none redone, none skipped
    assert a.feeds["crm.deal"].reconcile_from == -1 and sink.take() == []
