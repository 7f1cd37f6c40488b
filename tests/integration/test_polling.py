"""Change polling against the simulator over HTTP (through an incoming webhook): adds and updates by
modification time with overlap and de-duplication, nothing lost when SQS refuses, the page cap, deletions
by reconciliation, and the poll state on DynamoDB Local."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from b24core.bitrix.webhook import parse_incoming
from b24core.delivery.polling import ChangePoller, Cursor, DynamoPollStore, InMemoryPollStore, PollState
from b24core.events.message import QueuedEvent
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.versioned import StaleWrite
from b24core.tokens.client import PortalClient
from b24sim import Simulator

ALL = {"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE"}


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
        assert all(m.source == "poll" for m in self.sent)
        self.sent.clear()
        return out


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator("local.poll-test", "poll-test-secret") as s:
        yield s


@pytest.fixture
def box(sim: Simulator) -> Any:
    portal = sim.add_portal(profile="box", queue_blocked=True)
    portal.auth_server_blocked = True
    return portal


def webhook_client(box: Any) -> PortalClient:
    record = Portal(box.member_id, box.domain, box.client_endpoint, state=PortalState.ACTIVE)
    hook = parse_incoming(box.add_incoming_webhook(["crm"]), local=True)
    return PortalClient(record, keeper=None, webhook=hook)  # type: ignore[arg-type]


def test_adds_and_updates_are_polled_once_each_across_the_overlap(sim, box):
    client, sink = webhook_client(box), Sink()
    poller = ChangePoller(InMemoryPollStore(), sink, overlap_s=60, reconcile_every_s=10**9)
    assert poller.poll(client, ALL).sent == {} and sink.take() == []
    first = box.ui_deal_add({"TITLE": "a"})
    sim.clock.advance(1)  # the second of the change is over on the portal
    poller.poll(client, ALL)
    assert sink.take() == [("ONCRMDEALADD", str(first))]
    sim.clock.advance(5)
    poller.poll(client, ALL)  # the overlap lists it again: not sent twice
    assert sink.take() == []
    box.ui_deal_update(first, {"TITLE": "b"})
    second = box.ui_deal_add({"TITLE": "c"})
    sim.clock.advance(1)
    poller.poll(client, ALL)
    assert sorted(sink.take()) == [("ONCRMDEALADD", str(second)), ("ONCRMDEALUPDATE", str(first))]
    sim.clock.advance(30)
    poller.poll(client, ALL)
    assert sink.take() == []


def test_a_change_in_the_same_second_as_the_last_round_is_not_lost(sim, box):
    client, sink = webhook_client(box), Sink()
    poller = ChangePoller(InMemoryPollStore(), sink, reconcile_every_s=10**9)
    deal = box.ui_deal_add({"TITLE": "a"})
    poller.poll(client, ALL)  # the portal's second is still running: the row stays "open"
    assert sink.take() == [("ONCRMDEALADD", str(deal))]
    box.ui_deal_update(deal, {"TITLE": "b"})  # same DATE_MODIFY second
    sim.clock.advance(1)
    poller.poll(client, ALL)
    assert sink.take() == [("ONCRMDEALUPDATE", str(deal))]
    sim.clock.advance(1)
    poller.poll(client, ALL)  # now closed: never again
    assert sink.take() == []


def test_nothing_is_lost_when_sqs_refuses_and_the_page_cap_only_delays(sim, box):
    client, sink = webhook_client(box), Sink()
    poller = ChangePoller(InMemoryPollStore(), sink, max_pages=1, reconcile_every_s=10**9)
    poller.poll(client, ALL)
    ids = [box.ui_deal_add({"TITLE": f"d{i}"}) for i in range(70)]
    sim.clock.advance(1)
    sink.refuse = True
    assert poller.poll(client, ALL).incomplete
    sink.refuse = False
    got: list[tuple[str, str]] = []
    rounds = 0
    while len(got) < len(ids) and rounds < 5:
        result = poller.poll(client, ALL)
        got += sink.take()
        rounds += 1
    assert sorted(int(i) for _, i in got) == ids and rounds == 2  # 50 per round at most
    assert result.pages <= 3


def test_deletions_are_found_by_reconciliation_only_when_it_is_due(sim, box):
    client, sink = webhook_client(box), Sink()
    now = [1_000_000.0]
    poller = ChangePoller(InMemoryPollStore(), sink, reconcile_every_s=3600, clock=lambda: now[0])
    keep, gone = box.ui_deal_add({"TITLE": "k"}), box.ui_deal_add({"TITLE": "g"})
    sim.clock.advance(1)
    assert poller.poll(client, ALL).reconciled  # the first round reconciles: learns the IDs
    sink.take()
    box.ui_deal_delete(gone)
    now[0] += 60
    assert not poller.poll(client, ALL).reconciled and sink.take() == []
    now[0] += 3600
    assert poller.poll(client, ALL).reconciled
    assert sink.take() == [("ONCRMDEALDELETE", str(gone))]
    now[0] += 3600
    poller.poll(client, ALL)
    assert sink.take() == [] and keep


def test_only_wanted_events_are_sent_and_calls_go_through_the_webhook(sim, box):
    client, sink = webhook_client(box), Sink()
    spent: list[str] = []
    poller = ChangePoller(InMemoryPollStore(), sink, reconcile_every_s=0, spend=spent.append)
    deal = box.ui_deal_add({"TITLE": "x"})
    sim.clock.advance(1)
    poller.poll(client, {"ONCRMDEALUPDATE"})
    assert sink.take() == [("ONCRMDEALUPDATE", str(deal))]  # no add wanted: an update stands for it
    assert spent and set(spent) == {"crm.deal.list"}  # every request took its share of the budget
    assert poller.poll(client, {"ONUSERADD"}).pages == 0


def test_poll_state_round_trips_on_dynamodb_local(services, member_id):
    store = DynamoPollStore(services.resources["AppTable"], services.region, services.dynamodb_endpoint)
    cursor = Cursor("2026-01-01T00:00:00+00:00", ("1@2026-01-01T00:00:00+00:00!",), (1, 2), 5)
    first = store.save(PollState(member_id, {"crm.deal": cursor}))
    assert store.get(member_id) == first and first.cursors["crm.deal"] == cursor
    store.save(first)
    with pytest.raises(StaleWrite):
        store.save(first)
