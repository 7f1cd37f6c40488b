"""Delivery state on DynamoDB Local, the probe and the offline pull against the simulator over HTTP,
pulled records in the SQS server: the real wire formats (batch encoding, offline rows, queue bodies)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from b24core.aws.settings import DeliveryPolicy
from b24core.delivery.modes import DeliveryMode, ProbeOutcome
from b24core.delivery.offline import OfflinePuller
from b24core.delivery.probe import Prober
from b24core.delivery.store import DeliveryState, DynamoDeliveryStore, StaleWrite, mutate
from b24core.events.message import QueuedEvent
from b24core.events.queue_writer import QueueWriter
from b24core.events.signals import probe_id_from
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.tokens.client import PortalClient
from b24core.tokens.lease import DynamoLeaseStore
from b24sim import Simulator, forms

EVENTS = ["ONCRMDEALADD", "ONCRMDEALDELETE", "ONCRMDEALUPDATE"]


@pytest.fixture
def store(services: Any) -> DynamoDeliveryStore:
    return DynamoDeliveryStore(services.resources["AppTable"], services.region, services.dynamodb_endpoint)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator("local.offline-test", "offline-test-secret") as s:
        yield s


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            received.append(forms.parse(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def installed(sim: Simulator, url: str, **kw: Any) -> tuple[Any, PortalClient]:
    portal = sim.add_portal(profile="box", **kw)
    sim.install(portal.domain, url + "/install", mode="event")
    tokens = sim.issue_tokens(portal.domain)
    record = Portal(
        member_id=portal.member_id,
        domain=portal.domain,
        client_endpoint=portal.client_endpoint,
        state=PortalState.ACTIVE,
        access_token=tokens["access_token"],
        access_expires_at=2**31,
    )
    return portal, PortalClient(record, keeper=None)  # type: ignore[arg-type]  # tokens never expire here


# ---------------------------------------------------------------- the store
def test_delivery_state_round_trips_and_saves_are_optimistic(store, member_id):
    first = store.save(DeliveryState(member_id, kind="box", pending=("p1",), offline_events=("A", "B")))
    again = store.get(member_id)
    assert again == first and again.pending == ("p1",) and again.kind == "box"
    store.save(replace(again, mode=DeliveryMode.PULL))
    with pytest.raises(StaleWrite):
        store.save(replace(again, mode=DeliveryMode.LOSSLESS))  # an older version
    assert store.get(member_id).mode == DeliveryMode.PULL


def test_the_schedules_find_their_portals_through_the_index(store, member_id):
    due_soon = f"{member_id}-a"
    later = f"{member_id}-b"
    pulling = f"{member_id}-c"
    store.save(DeliveryState(due_soon, next_probe_at=100))
    store.save(DeliveryState(later, next_probe_at=10**11))
    store.save(DeliveryState(pulling, mode=DeliveryMode.PULL, next_probe_at=10**11))
    due = store.due("DELIVERY#online", 200)
    assert due_soon in due and later not in due
    assert pulling in store.members("DELIVERY#pull") and pulling not in store.members("DELIVERY#online")
    retired = mutate(store, pulling, lambda s: replace(s, active=False))
    assert retired.index_keys() == (None, None) and pulling not in store.members("DELIVERY#pull")


# ---------------------------------------------------------------- the probe over the real queue
def test_the_probe_nonce_comes_back_in_onapptest_and_a_blocked_queue_loses_it(sim, receiver, store):
    url, received = receiver
    portal, client = installed(sim, url)
    state = Prober(store, DeliveryPolicy()).send(client, portal.member_id, url + "/events", "box")
    assert state.probe_outcome == ProbeOutcome.PENDING
    assert sim.wait_idle()
    probes = [f for f in received if f.get("event") == "ONAPPTEST"]
    assert len(probes) == 1 and probe_id_from(probes[0]) == state.probe_id

    blocked, blocked_client = installed(sim, url, queue_blocked=True)
    Prober(store, DeliveryPolicy()).send(blocked_client, blocked.member_id, url + "/events", "box")
    assert sim.wait_idle()
    assert len([f for f in received if f.get("event") == "ONAPPTEST"]) == 1
    assert [d.outcome for d in sim.deliveries_for(blocked.domain, "ONAPPTEST")] == ["blocked"]


# ---------------------------------------------------------------- the pull, end to end of this layer
class RefusingSqs:
    """The SQS server, but 30% of each batch is refused (as a throttled SendMessageBatch reports)."""

    def __init__(self, real: Any, share: float = 0.3) -> None:
        self.real = real
        self.share = share
        self.rng = random.Random(11)  # noqa: S311 - a reproducible share, not security
        self.refused = 0

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        keep = [e for e in Entries if self.rng.random() >= self.share]
        failed = [
            {"Id": e["Id"], "Code": "ThrottlingException", "SenderFault": False}
            for e in Entries
            if e not in keep
        ]
        self.refused += len(failed)
        ok = self.real.send_message_batch(QueueUrl=QueueUrl, Entries=keep)["Successful"] if keep else []
        return {"Successful": ok, "Failed": failed}


def drain(sqs: Any, url: str) -> list[QueuedEvent]:
    out: list[QueuedEvent] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = got.get("Messages") or []
        if not messages:
            return out
        for m in messages:
            out.append(QueuedEvent.from_json(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_a_blocked_box_is_pulled_into_sqs_with_nothing_lost_while_sqs_refuses_30_percent(
    sim, receiver, store, services
):
    url, _ = receiver
    box, client = installed(sim, url, queue_blocked=True)
    sqs = services.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"offline-{box.member_id[:12]}")["QueueUrl"]
    refusing = RefusingSqs(sqs)
    table = services.resources["AppTable"]
    puller = OfflinePuller(
        store,
        DynamoLeaseStore(table, services.region, services.dynamodb_endpoint),
        QueueWriter(refusing, queue_url, attempts=1),  # no retries: every refusal goes to event.offline.error
        DeliveryPolicy(pull_batch_size=25),
    )
    mutate(store, box.member_id, lambda s: replace(s, mode=DeliveryMode.PULL, events_url=url + "/events"))
    record = client.portal
    puller.run(client, record, EVENTS)
    assert {b.event for b in box.bindings if b.offline} == set(EVENTS)

    ids = [box.ui_deal_add({"TITLE": f"D{i}"}) for i in range(60)]
    for deal_id in ids[:20]:
        box.ui_deal_update(deal_id, {"TITLE": "changed"})
        box.ui_deal_update(deal_id, {"TITLE": "changed twice"})  # the queue keeps one record per object
    box.ui_deal_delete(ids[-1])
    expected = {("ONCRMDEALADD", str(i)) for i in ids}
    expected |= {("ONCRMDEALUPDATE", str(i)) for i in ids[:20]}
    expected.add(("ONCRMDEALDELETE", str(ids[-1])))
    assert len(box.offline) == len(expected)

    got: list[QueuedEvent] = []
    for _ in range(15):  # scheduled runs: refused records come back as errors and are retried
        puller.run(client, record, EVENTS)
        got.extend(drain(sqs, queue_url))
        if not box.offline:
            break
    assert refusing.refused > 0
    assert box.offline == []
    pulled = {(m.event, m.data["FIELDS"]["ID"]) for m in got}
    assert pulled == expected  # every record reached SQS before it left the portal
    assert all(m.source == "offline" and m.member_id == box.member_id for m in got)
    state = store.get(box.member_id)
    assert state.pending == () and not state.errors_marked and state.pulled_total == len(got)
