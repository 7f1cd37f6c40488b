"""Scheduled rounds over a fleet (delivery/fleet.py and the probe, pull and audit rounds built on it):
portals run in parallel, never two threads on one portal, pages sized to the time left, and a round that
runs out of time says so and leaves the rest first in line for the next run."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from b24core.aws import metrics
from b24core.aws.settings import DeliveryPolicy
from b24core.capabilities.manifest import load_manifest
from b24core.delivery import fleet
from b24core.delivery import runner as runner_module
from b24core.delivery.offline import OfflinePuller
from b24core.delivery.probe import AppWorld, Prober
from b24core.delivery.runner import DeliveryRunner
from b24core.delivery.store import InMemoryDeliveryStore
from b24core.events.queue_writer import QueueWriter
from b24core.portals.store import InMemoryPortalStore
from tests.unit.delivery_fakes import PORTAL, FakePortal, FakeSqs
from tests.unit.test_delivery_probe import URL, Clock, InMemoryLeaseStore


def _due_list(members: list[str]):
    """A due index: what a round has not finished stays due (like a failed portal's next_at)."""
    done: set[str] = set()

    def page(size: int, tried: set[str]) -> list[str]:
        return [m for m in members if m not in done and m not in tried][:size]

    return page, done


def test_a_round_runs_portals_in_parallel_and_each_once():
    members = [f"m{i}" for i in range(40)]
    page, done = _due_list(members)
    barrier = threading.Barrier(8, timeout=10)  # breaks (and the round fails) unless 8 run at once
    running: dict[str, int] = {}
    lock = threading.Lock()
    overlap = []

    def work(member_id: str) -> str:
        with lock:
            running[member_id] = running.get(member_id, 0) + 1
            overlap.append(running[member_id])
        barrier.wait()
        with lock:
            running[member_id] -= 1
        done.add(member_id)
        return member_id

    seen: list[str] = []
    report = fleet.run_round(
        "t", page, work, lambda m, r: seen.append(r), concurrency=8, deadline=None, period_s=60
    )
    assert sorted(seen) == sorted(members) and report.done == 40 and report.left == 0
    assert max(overlap) == 1  # never two threads on one portal


def test_a_round_that_runs_out_of_time_reports_it_and_the_next_run_starts_with_the_rest():
    members = [f"m{i:04d}" for i in range(3000)]
    page, done = _due_list(members)

    def slow(member_id: str) -> None:
        time.sleep(0.01)
        done.add(member_id)

    with metrics.record_metrics() as seen:
        first = fleet.run_round(
            "t2", page, slow, lambda m, r: None, concurrency=4, deadline=time.monotonic() + 0.2, period_s=60
        )
    assert first.behind and 0 < first.done < 3000 and first.done + first.left == 3000  # the rest, counted
    assert seen.total("RoundBehind") == first.left
    assert seen.total("RoundUtilisation", round="t2") > 0
    assert first.per_portal_s > 0 and first.capacity > 0
    fast = done.add
    rest = fleet.run_round("t2", page, fast, lambda m, r: None, concurrency=32, deadline=None, period_s=60)
    assert not rest.behind and len(done) == 3000  # the next run took the rest, nothing skipped
    assert first.done + rest.done >= 3000


def test_pages_are_sized_to_what_fits_in_the_time_left():
    assert fleet._page_size(0.0, 16, None) == max(fleet.MIN_PAGE, 64)  # nothing measured yet
    assert 450 <= fleet._page_size(0.1, 10, time.monotonic() + 5) <= 500  # 10 threads x 5 s / 0.1 s
    assert fleet._page_size(1.0, 2, time.monotonic() + 5) == fleet.MIN_PAGE  # a query's worth at least
    assert fleet._page_size(0.01, 10, time.monotonic() + 50) == fleet.MAX_PAGE


def _fleet_runner(n: int, concurrency: int):
    clock = Clock()
    portals = InMemoryPortalStore()
    fakes: dict[str, FakePortal] = {}
    for i in range(n):
        member = f"m{i:04d}"
        portals.save(replace(PORTAL, member_id=member, version=0))
        fakes[member] = FakePortal(portal=replace(PORTAL, member_id=member))
    store = InMemoryDeliveryStore()
    policy = DeliveryPolicy(probe_timeout_s=300, round_concurrency=concurrency, pull_concurrency=concurrency)

    r = DeliveryRunner(
        portals=portals,
        store=store,
        prober=Prober(store, policy, clock),
        puller=OfflinePuller(
            store,
            InMemoryLeaseStore(),
            QueueWriter(FakeSqs(), "q", sleep=lambda s: None),
            policy,
            clock=clock,
        ),
        make_client=lambda portal: fakes[portal.member_id],
        manifest=load_manifest(),
        policy=policy,
        default_events_url=URL,
        world=lambda: AppWorld(("3.217.33.54",), "https://dl.example/app-world.json", 1.0),
        clock=clock,
    )
    return r, clock, fakes


def test_the_probe_round_probes_every_due_portal_of_a_fleet_in_parallel():
    r, clock, fakes = _fleet_runner(30, 6)
    for member in fakes:
        r.probe(member)
    clock.now += 301 + 3600  # every verdict past due; then the next probes
    r.probe_due()  # judged missed: pull mode
    clock.now += 3600 + 301
    r.make_client = _barrier_client(fakes, threading.Barrier(6, timeout=10))
    answer = r.probe_due()
    assert answer["sent"] + answer["judged_missed"] == 30 and answer.get("failed", 0) == 0
    assert answer["round"]["done"] == 30 and answer["round"]["left"] == 0


def _barrier_client(fakes, barrier):
    def client(portal):
        barrier.wait()  # raises BrokenBarrierError (a failed probe) unless 6 portals are worked at once
        return fakes[portal.member_id]

    return client


def test_the_pull_round_pulls_every_portal_in_parallel_and_a_short_run_continues_after_where_it_stopped():
    r, clock, fakes = _fleet_runner(24, 4)
    for member in fakes:
        r.set_mode(member, "lossless")
    r.make_client = _barrier_client(fakes, threading.Barrier(4, timeout=10))
    answer = r.pull_due()
    assert answer["portals"] == 24 and answer["round"]["done"] == 24
    members = sorted(fakes)
    assert r.pull_due(deadline=time.monotonic() - 1)["round"]["left"] == 24  # no time: all reported left
    runner_module._resume_cache["pull"] = members[9]
    assert runner_module._resume_after(members, "pull")[0] == members[10]


def test_the_audit_round_audits_every_due_portal_of_a_fleet_in_parallel():
    from b24core.aws.settings import AuditPolicy
    from b24core.delivery.audit_round import AuditRound
    from b24core.delivery.audit_store import InMemoryAuditStore, schedule_audit
    from b24core.delivery.route import RouteKeeper
    from tests.unit.test_delivery_route import PORTAL as AUDITED
    from tests.unit.test_delivery_route import NotifyClient, found

    portals, delivery, audits = InMemoryPortalStore(), InMemoryDeliveryStore(), InMemoryAuditStore()
    members = [f"a{i:02d}" for i in range(24)]
    for member in members:
        portals.save(replace(AUDITED, member_id=member))
        schedule_audit(audits, member, 0)
    barrier = threading.Barrier(6, timeout=10)  # the audits fail unless six run at once

    class Audit:
        def run(self, client, member_id, domain, feeds, specs, wanted, **kw):
            barrier.wait()
            return feeds, replace(found(by_event=1), member_id=member_id)

    client = NotifyClient()
    rnd = AuditRound(
        audits,
        delivery,
        portals,
        RouteKeeper(
            delivery, portals, load_manifest(), lambda p: client, lambda: AppWorld((), "https://l", 0.0)
        ),
        make_audit=lambda m: Audit(),  # type: ignore[arg-type,return-value]
        make_client=lambda p: client,
        manifest=load_manifest(),
        policy=AuditPolicy(round_concurrency=6),
        clock=lambda: 5000.0,
    )
    answer = rnd.due()
    assert answer["audited"] == 24 and answer["failed"] == 0
    assert answer["round"]["done"] == 24 and answer["round"]["left"] == 0
    assert all(audits.get(m).next_at == 5000 + 300 for m in members)  # each one's next audit planned
