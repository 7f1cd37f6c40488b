"""The delivery watchdog against the simulator over HTTP (through an incoming webhook): no changes or
young changes give no verdict, changes without a later outgoing-webhook event switch the portal to
polling from before the first missed change (nothing lost, deletions included) and tell the admin once,
events after the changes say ok, and their return switches back. Its state, the arrival marks and the
watched-portal index on DynamoDB Local."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from b24core.aws.metrics import record_metrics
from b24core.bitrix.webhook import parse_incoming
from b24core.capabilities.isolation import AuthReach, QueueReach, isolation_record
from b24core.capabilities.manifest import load_manifest
from b24core.capabilities.notices import notification_feature
from b24core.delivery.polling import ChangePoller, InMemoryPollStore
from b24core.delivery.watch_store import DynamoWatchStore, InMemoryWatchStore, WatchState
from b24core.delivery.watchdog import DeliveryWatchdog
from b24core.events.arrivals import DynamoArrivals, InMemoryArrivals
from b24core.events.message import QueuedEvent
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.store import InMemoryPortalStore
from b24core.portals.versioned import StaleWrite
from b24core.portals.webhook_store import DynamoWebhookStore, InMemoryWebhookStore, WebhookConnection
from b24core.tokens.client import PortalClient
from b24sim import Simulator

MANIFEST = load_manifest()
ALL = {"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE"}
GRACE = 30
TOLD = "event queue unreachable"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator("local.watchdog-test", "watchdog-test-secret") as s:
        yield s


@dataclass
class World:
    sim: Simulator
    box: Any
    client: PortalClient
    watchdog: DeliveryWatchdog
    portals: InMemoryPortalStore
    webhooks: InMemoryWebhookStore
    polls: InMemoryPollStore
    arrivals: InMemoryArrivals
    logged: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def member_id(self) -> str:
        return str(self.box.member_id)

    def check(self) -> Any:
        conn = self.webhooks.get(self.member_id)
        assert conn is not None
        return self.watchdog.check(self.client, conn, ALL)

    def event_arrived(self) -> None:
        """The intake stored an outgoing-webhook event of this portal now."""
        self.arrivals.write(self.member_id, int(self.sim.clock.now()))

    def conn(self) -> WebhookConnection:
        conn = self.webhooks.get(self.member_id)
        assert conn is not None
        return conn

    def queue_finding(self) -> str:
        portal = self.portals.get(self.member_id)
        assert portal is not None
        return str(portal.capabilities["isolation"]["event_queue"])

    def told(self, text: str = TOLD) -> list[str]:
        return [n["message"] for n in self.box.notifications if text in n["message"]]


def world(sim: Simulator, *, can_notify: bool = True, language: str = "") -> World:
    box = sim.add_portal(profile="box", queue_blocked=True)
    box.auth_server_blocked = True
    box.restore_method("im.notify.system.add")
    hook = parse_incoming(box.add_incoming_webhook(["crm", "im"]), local=True)
    channel = notification_feature(MANIFEST)
    assert channel is not None
    caps = {
        "isolation": isolation_record(AuthReach.UNREACHABLE),
        "features": {channel: {"status": "available" if can_notify else "missing"}},
        "admin_user_id": "1",
    }
    portals = InMemoryPortalStore()
    record = portals.save(
        Portal(
            box.member_id,
            box.domain,
            box.client_endpoint,
            state=PortalState.ACTIVE,
            capabilities=caps,
            language=language,
        )
    )
    webhooks = InMemoryWebhookStore()
    webhooks.save(
        WebhookConnection(
            box.member_id,
            hook.base,
            hook.user_id,
            hook.code,
            outgoing_token="t" * 32,
            connected_at=int(sim.clock.now()),
        )
    )
    polls, arrivals = InMemoryPollStore(), InMemoryArrivals()
    logged: list[tuple[str, dict[str, Any]]] = []
    watchdog = DeliveryWatchdog(
        InMemoryWatchStore(),
        webhooks,
        portals,
        polls,
        arrivals,
        MANIFEST,
        interval_s=0,
        grace_s=GRACE,
        clock=sim.clock.now,  # our clock and the portal's agree here; skew is a unit test's matter
        log=lambda message, fields: logged.append((message, fields)),
    )
    client = PortalClient(record, keeper=None, webhook=hook)  # type: ignore[arg-type]
    return World(sim, box, client, watchdog, portals, webhooks, polls, arrivals, logged)


def test_no_changes_and_young_changes_give_no_verdict(sim):
    w = world(sim)
    assert w.check().verdict is None  # nothing changed since the webhook was connected
    w.box.ui_deal_add({"TITLE": "young"})
    result = w.check()
    assert result.verdict is None and result.pending == 1  # its event may still be on its way
    assert w.queue_finding() == "unknown" and not w.conn().polled and w.told() == []


def test_changes_without_an_event_switch_to_polling_and_tell_the_admin_once(sim):
    w = world(sim)
    w.check()
    w.box.ui_deal_add({"TITLE": "lost"})
    sim.clock.advance(GRACE + 1)
    with record_metrics() as metrics:
        result = w.check()
    assert result.verdict == QueueReach.UNREACHABLE and result.switched_to == "change polling"
    assert metrics.total("DeliveryBlocked") == 1  # the delivery-blocked alarm covers webhook portals too
    assert w.conn().polled and w.conn().polling_since and w.conn().outgoing_token  # the token is kept
    assert w.queue_finding() == "event_queue_unreachable"
    iso = w.portals.get(w.member_id).capabilities["isolation"]
    assert iso["auth_server"] == "authorization_server_unreachable_from_portal"  # kept beside it
    assert iso["summary"] == "authorization server unreachable from the portal; event queue unreachable"
    assert [m for m, f in w.logged if m == "events mode switched"] == ["events mode switched"]
    assert w.logged[0][1]["events_to"] == "change polling" and w.logged[0][1]["by"] == "delivery watchdog"
    assert len(w.told()) == 1 and "app-world.json" in w.told()[0]
    w.box.ui_deal_add({"TITLE": "lost too"})
    sim.clock.advance(GRACE + 1)
    again = w.check()
    assert again.verdict == QueueReach.UNREACHABLE and again.switched_to == ""  # switched already
    assert len(w.told()) == 1 and len(w.logged) == 1


def test_an_event_after_the_changes_means_the_queue_delivers(sim):
    w = world(sim)
    w.check()
    deal = w.box.ui_deal_add({"TITLE": "delivered"})
    w.box.ui_deal_update(deal, {"TITLE": "delivered again"})
    w.event_arrived()
    sim.clock.advance(GRACE + 1)
    result = w.check()
    assert result.verdict == QueueReach.OK and result.judged == 1 and result.switched_to == ""  # one deal
    assert w.queue_finding() == "ok" and not w.conn().polled and w.logged == [] and w.told("event") == []
    assert w.check().verdict is None  # judged changes are not judged again


def test_an_event_long_before_the_changes_proves_nothing(sim):
    w = world(sim)
    w.check()
    w.event_arrived()
    sim.clock.advance(300)  # well past the intake's one-write-a-minute slack
    w.box.ui_deal_add({"TITLE": "after the last event"})
    sim.clock.advance(GRACE + 1)
    assert w.check().verdict == QueueReach.UNREACHABLE


def test_polling_starts_before_the_first_missed_change_and_finds_deletions_made_meanwhile(sim):
    w = world(sim)
    old, doomed = w.box.ui_deal_add({"TITLE": "old"}), w.box.ui_deal_add({"TITLE": "doomed"})
    sim.clock.advance(600)
    w.webhooks.save(replace(w.conn(), connected_at=int(sim.clock.now())))  # the deals are older
    assert w.check().verdict is None  # the first check learns which deals exist
    delivered = w.box.ui_deal_add({"TITLE": "delivered"})
    w.event_arrived()
    sim.clock.advance(GRACE + 1)
    assert w.check().verdict == QueueReach.OK
    sim.clock.advance(600)
    w.box.ui_deal_update(old, {"TITLE": "changed while blocked"})  # the queue is blocked from here on
    w.box.ui_deal_delete(doomed)
    added = w.box.ui_deal_add({"TITLE": "added while blocked"})
    sim.clock.advance(GRACE + 1)
    assert w.check().switched_to == "change polling"
    cursor = w.polls.get(w.member_id).cursors["crm.deal"]
    assert {old, doomed, delivered} <= set(cursor.known_ids) and cursor.reconciled_at == 0

    sent: list[QueuedEvent] = []

    def sink(messages: dict[str, QueuedEvent]) -> set[str]:
        sent.extend(messages.values())
        return set(messages)

    ChangePoller(w.polls, sink, overlap_s=60, reconcile_every_s=3600, clock=sim.clock.now).poll(w.client, ALL)
    got = {(m.event, int(m.data["FIELDS"]["ID"])) for m in sent}
    assert {
        ("ONCRMDEALUPDATE", old),  # known: an update, not a new deal
        ("ONCRMDEALADD", added),
        ("ONCRMDEALDELETE", doomed),  # deleted while nothing arrived: found by the first reconciliation
    } <= got
    # It starts where delivery was last seen, not at the beginning of time.
    assert all(i in (old, added, doomed, delivered) for _, i in got)


def test_events_arriving_again_switch_back_and_the_admin_is_told(sim):
    w = world(sim)
    w.check()
    w.box.ui_deal_add({"TITLE": "lost"})
    sim.clock.advance(GRACE + 1)
    assert w.check().switched_to == "change polling"
    w.box.queue_blocked = False  # the network admin opened the queue
    w.box.ui_deal_add({"TITLE": "delivered"})
    w.event_arrived()
    sim.clock.advance(GRACE + 1)
    result = w.check()
    assert result.verdict == QueueReach.OK and result.switched_to == "outgoing webhook"
    assert not w.conn().polled and w.conn().polling_since == 0 and w.queue_finding() == "ok"
    assert [f["events_to"] for m, f in w.logged] == ["change polling", "outgoing webhook"]
    assert len(w.told()) == 1 and len(w.told("arrive again")) == 1
    portal = w.portals.get(w.member_id)
    assert portal.capabilities["notified"]["isolation"] == portal.capabilities["isolation"]["summary"]


def test_an_admin_who_cannot_be_told_yet_is_told_once_when_the_app_can(sim):
    w = world(sim, can_notify=False)
    w.check()
    w.box.ui_deal_add({"TITLE": "lost"})
    sim.clock.advance(GRACE + 1)
    result = w.check()
    assert result.verdict == QueueReach.UNREACHABLE and not result.notified and w.told() == []
    assert "isolation" not in (w.portals.get(w.member_id).capabilities.get("notified") or {})
    portal = w.portals.get(w.member_id)
    caps = dict(portal.capabilities)
    caps["features"] = {notification_feature(MANIFEST): {"status": "available"}}
    w.portals.save(replace(portal, capabilities=caps))
    assert w.check().notified and len(w.told()) == 1  # no new change needed: the finding stands
    assert not w.check().notified and len(w.told()) == 1


# ---------------------------------------------------------------- DynamoDB Local
def test_watch_state_arrivals_and_the_watched_index_on_dynamodb_local(services, member_id):
    table, region, host = services.resources["AppTable"], services.region, services.dynamodb_endpoint
    store = DynamoWatchStore(table, region, host)
    state = WatchState(
        member_id, "2026-01-01T00:00:00+03:00", ("7@2026-01-01T00:00:00+03:00",), (1, 7), 5, "ok", 4
    )
    first = store.save(state)
    assert store.get(member_id) == first and first.version == 1
    store.save(first)
    with pytest.raises(StaleWrite):
        store.save(first)

    import boto3

    arrivals = DynamoArrivals(boto3.client("dynamodb", region_name=region, endpoint_url=host), table)
    assert arrivals.last(member_id) == 0
    arrivals.write(member_id, 100)
    arrivals.write(member_id, 50)  # a slower process's older arrival never moves it back
    assert arrivals.last(member_id) == 100
    arrivals.write(member_id, 150)
    assert arrivals.last(member_id) == 150

    hooks = DynamoWebhookStore(table, region, host)
    base = WebhookConnection(member_id, "https://x.example/rest/", 1, "c" * 32)
    watched, switched, polled = (f"{member_id}-{n}" for n in ("w", "s", "p"))
    hooks.save(replace(base, member_id=watched, outgoing_token="t" * 32))
    hooks.save(replace(base, member_id=switched, outgoing_token="t" * 32, polling_since=int(time.time())))
    hooks.save(replace(base, member_id=polled))
    ours = {c.member_id: c for c in hooks.watched() if c.member_id.startswith(member_id)}
    assert set(ours) == {watched, switched} and ours[switched].polled and not ours[watched].polled
    assert switched in hooks.polled_members() and polled in hooks.polled_members()
    assert watched not in hooks.polled_members()


def test_a_russian_speaking_portals_admin_is_told_in_russian(sim):
    w = world(sim, language="ru")
    w.check()
    w.box.ui_deal_add({"TITLE": "lost"})
    sim.clock.advance(GRACE + 1)
    assert w.check().verdict == QueueReach.UNREACHABLE
    (message,) = [n["message"] for n in w.box.notifications]
    assert message.startswith("[b24app] очередь событий недоступна: изменения на портале")
    assert "app-world.json" in message and "changes" not in message
    # The record keeps its English summary: it is the key that says the admin was told.
    assert (
        w.portals.get(w.member_id).capabilities["notified"]["isolation"].endswith("event queue unreachable")
    )
