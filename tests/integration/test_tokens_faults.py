"""Token custody under faults, against the simulator's single-use auth server and DynamoDB Local.

* 20 concurrent callers hitting expired_token on one portal, 50 rounds: one refresh per round, none lost.
* A refresher killed after the auth server answered (before / after the save): lease expires, the next
  caller recovers by re-reading or, when the pair died with the process, through self-healing.
* The auth server down: portals stay active / refresh_failing, nothing lost; the sweep resumes after.
* invalid_grant and PAYMENT_REQUIRED move the portal to the right state and nowhere else.
* The sweep finds due portals through gsi1 only: Queries, no Scan, items read = portals due.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from b24core.bitrix.oauth import AuthServer
from b24core.portals.states import PortalState, TokenState
from b24core.portals.store import DynamoPortalStore
from b24core.tokens.client import PortalClient
from b24core.tokens.lease import DynamoLeaseStore, LeaseKey
from b24core.tokens.outcomes import (
    Outcome,
    ReauthRequired,
    RefreshReason,
    RefreshUnavailable,
    SubscriptionExpired,
)
from b24core.tokens.sweep import AuthPace, Sweep
from b24sim import Simulator

from ._tokens_world import CLIENT_ID, ROOT, OffsetClock, World, count_ops, fresh_table

DAY = 24 * 3600


@pytest.fixture(scope="module")
def world(services) -> World:
    secret = secrets.token_hex(16)
    with Simulator(CLIENT_ID, secret) as sim:
        table = fresh_table(services)
        region, endpoint = services.region, services.dynamodb_endpoint
        yield World(
            sim=sim,
            secret=secret,
            table=table,
            store=DynamoPortalStore(table, region, endpoint),
            leases=DynamoLeaseStore(table, region, endpoint),
            clock=OffsetClock(),
            region=region,
            endpoint=endpoint,
        )


@pytest.fixture(autouse=True)
def _reset(world: World):
    world.clock.offset = 0
    world.sim.oauth.down = False
    world.sim.oauth.latency_s = 0
    yield
    world.clock.offset = 0
    world.sim.oauth.down = False


def wait_for(condition, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# ---------------------------------------------------------------------------- single flight
def test_twenty_concurrent_callers_for_fifty_rounds_refresh_once_per_round_and_lose_nothing(world):
    portal = world.install()
    keepers = [world.keeper() for _ in range(20)]  # twenty Lambdas, each its own process state
    domain = portal.domain
    for round_no in range(50):
        assert world.sim.expire_access_tokens(domain) >= 1
        seen = world.store.get(portal.member_id)
        before = len(world.token_requests(portal.member_id))
        barrier = threading.Barrier(20)
        answers: list[object] = []
        failures: list[BaseException] = []

        def caller(keeper, seen=seen, barrier=barrier, answers=answers, failures=failures):
            client = PortalClient(seen, keeper, timeout_s=10)
            barrier.wait()
            try:
                answers.append(client.call("server.time"))
            except BaseException as exc:  # collected and asserted below
                failures.append(exc)

        threads = [threading.Thread(target=caller, args=(k,)) for k in keepers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert failures == [], f"round {round_no}: {failures[:3]}"
        assert len(answers) == 20
        this_round = world.token_requests(portal.member_id)[before:]
        assert this_round == ["ok"], f"round {round_no}: auth server saw {this_round}"
    final = world.store.get(portal.member_id)
    assert final.token_state == TokenState.ACTIVE and final.state == PortalState.ACTIVE
    assert world.token_requests(portal.member_id) == ["ok"] * 50
    assert world.leases.peek(LeaseKey.refresh(portal.member_id)) is None  # every lease was given back


# ---------------------------------------------------------------------------- killed refresher
def _run_frozen_refresher(world: World, member_id: str, mode: str, tmp_path: Path) -> None:
    marker = tmp_path / f"{mode}.frozen"
    env = {
        **os.environ,
        "AWS_REGION": world.region,
        "T_TABLE": world.table,
        "T_ENDPOINT": world.endpoint,
        "T_MEMBER": member_id,
        "T_OAUTH_URL": world.sim.oauth_url,
        "T_CLIENT_ID": CLIENT_ID,
        "T_SECRET": world.secret,
        "T_LEASE_S": "5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration._refresher_proc", mode, str(marker)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: marker.exists() or proc.poll() is not None, 30, "the refresher to freeze")
        assert marker.exists(), proc.stderr.read().decode() if proc.stderr else "refresher exited"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def test_refresher_killed_before_saving_loses_the_pair_then_the_portal_heals_from_a_fresh_pair(
    world, tmp_path
):
    portal = world.install()
    world.sim.expire_access_tokens(portal.domain)
    _run_frozen_refresher(world, portal.member_id, "before_save", tmp_path)
    # The auth server answered once (the new pair died with the process); its lease is still there.
    assert world.token_requests(portal.member_id) == ["ok"]
    assert world.leases.peek(LeaseKey.refresh(portal.member_id)) is not None
    assert world.store.get(portal.member_id).refresh_token == portal.refresh_token
    # The next caller waits out the dead holder's lease (5 s; here its clock is 6 s ahead).
    world.clock.offset = 6
    keeper = world.keeper()
    with pytest.raises(ReauthRequired):
        PortalClient(world.store.get(portal.member_id), keeper).call("server.time")
    lost = world.store.get(portal.member_id)
    assert lost.token_state == TokenState.REAUTH_REQUIRED and lost.state == PortalState.ACTIVE
    assert world.token_requests(portal.member_id) == ["ok", "invalid_grant"]
    # Self-healing: the next verified fresh pair (the admin opens the app) restores the portal.
    fresh = world.sim.issue_tokens(portal.domain)
    result = keeper.adopt(portal.member_id, fresh["access_token"], fresh["refresh_token"], 3600, "frame")
    assert result.outcome == Outcome.ADOPTED
    healed = world.store.get(portal.member_id)
    assert healed.token_state == TokenState.ACTIVE
    assert PortalClient(healed, keeper).call("server.time")


def test_refresher_killed_after_saving_is_recovered_by_rereading_without_another_refresh(world, tmp_path):
    portal = world.install()
    world.sim.expire_access_tokens(portal.domain)
    _run_frozen_refresher(world, portal.member_id, "after_save", tmp_path)
    assert world.token_requests(portal.member_id) == ["ok"]
    lease = world.leases.peek(LeaseKey.refresh(portal.member_id))
    assert lease is not None  # killed before it could give the lease back
    client = PortalClient(portal, world.keeper())  # a caller still holding the old, expired token
    assert client.call("server.time")
    assert world.token_requests(portal.member_id) == ["ok"]
    assert world.store.get(portal.member_id).token_state == TokenState.ACTIVE


# ---------------------------------------------------------------------------- auth server down
def test_auth_server_down_loses_nothing_and_the_sweep_resumes_when_it_is_back(world):
    keeper = world.keeper()
    now = int(world.clock())
    expiring = [world.install() for _ in range(3)]
    aging = [world.install(refreshed_at=now - 40 * DAY) for _ in range(3)]
    world.sim.oauth.down = True
    down_before = sum(1 for r in world.sim.oauth.requests if r.outcome == "down")
    for p in expiring:
        world.sim.expire_access_tokens(p.domain)
        for _ in range(3):  # repeated calls fail fast: one request to the dead server per portal
            with pytest.raises(RefreshUnavailable):
                PortalClient(world.store.get(p.member_id), keeper).call("server.time")
    sweep = Sweep(world.store, keeper, world.leases, keeper.policy, clock=world.clock, limiter=AuthPace(100))
    report = sweep.run()
    assert report.outcomes.get("failing") == 3 and report.refreshed == 0
    states = {world.store.get(p.member_id).token_state for p in expiring + aging}
    assert states == {TokenState.REFRESH_FAILING}
    assert sum(1 for r in world.sim.oauth.requests if r.outcome == "down") - down_before == 6
    # Back up: the portals' next attempts come due and the sweep brings every one back.
    world.sim.oauth.down = False
    world.clock.offset = RETRY_MAX_S + 60
    report = sweep.run()
    assert report.refreshed >= 6
    for p in expiring + aging:
        back = world.store.get(p.member_id)
        assert back.token_state == TokenState.ACTIVE and back.refresh_attempts == 0
        assert PortalClient(back, keeper).call("server.time")
        assert "invalid_grant" not in world.token_requests(p.member_id)


RETRY_MAX_S = 3600


# ---------------------------------------------------------------------------- grant errors
def test_invalid_grant_moves_the_portal_to_reauth_required_and_nowhere_else(world):
    keeper = world.keeper()
    portal = world.install()
    # Somebody outside the bundle spent the refresh token (a copied database, a second deployment).
    AuthServer(world.sim.oauth_url).refresh(CLIENT_ID, world.secret, portal.refresh_token)
    world.sim.expire_access_tokens(portal.domain)
    with pytest.raises(ReauthRequired):
        PortalClient(portal, keeper).call("server.time")
    lost = world.store.get(portal.member_id)
    assert (lost.state, lost.token_state) == (PortalState.ACTIVE, TokenState.REAUTH_REQUIRED)
    assert lost.token_state_reason == "invalid_grant"
    assert lost.refresh_token == portal.refresh_token and lost.application_token == portal.application_token
    # Not retried by the sweep, not refreshed by later calls.
    world.clock.offset = 100 * DAY
    Sweep(world.store, keeper, world.leases, keeper.policy, clock=world.clock).run()
    with pytest.raises(ReauthRequired):
        PortalClient(world.store.get(portal.member_id), keeper).call("server.time")
    assert world.token_requests(portal.member_id) == ["ok", "invalid_grant"]


def test_payment_required_moves_the_portal_to_payment_required_and_back_after_payment(world):
    keeper = world.keeper()
    portal = world.install()
    world.sim.portal(portal.domain).payment_required = True
    world.sim.expire_access_tokens(portal.domain)
    with pytest.raises(SubscriptionExpired):
        PortalClient(portal, keeper).call("server.time")
    unpaid = world.store.get(portal.member_id)
    assert (unpaid.state, unpaid.token_state) == (PortalState.ACTIVE, TokenState.PAYMENT_REQUIRED)
    assert unpaid.next_attempt_at >= int(world.clock()) + DAY
    assert unpaid.refresh_token == portal.refresh_token
    world.sim.portal(portal.domain).payment_required = False
    world.clock.offset = 2 * DAY
    result = keeper.attempt(world.store.get(portal.member_id), RefreshReason.RETRY)
    assert result.outcome == Outcome.REFRESHED
    assert world.token_requests(portal.member_id) == ["PAYMENT_REQUIRED", "ok"]


# ---------------------------------------------------------------------------- sweep cost
def test_the_sweep_reads_only_due_portals_through_the_index_and_never_scans(services, world):
    table = fresh_table(services)
    store = DynamoPortalStore(table, world.region, world.endpoint)
    leases = DynamoLeaseStore(table, world.region, world.endpoint)
    w = World(world.sim, world.secret, table, store, leases, OffsetClock(), world.region, world.endpoint)
    now = int(w.clock())
    due = [w.install(refreshed_at=now - 31 * DAY) for _ in range(6)]
    for _ in range(150):
        w.install(refreshed_at=now - 3 * DAY)
    counter = count_ops(store)
    keeper = w.keeper()
    report = Sweep(store, keeper, leases, keeper.policy, clock=w.clock, limiter=AuthPace(100)).run()
    assert report.refreshed == 6 and report.due_read == 6
    assert counter.ops["Scan"] == 0
    assert counter.ops["Query"] == report.queries == 2  # one per partition (RETRY, REFRESH)
    assert counter.scanned == 6  # items read to find them = portals due
    assert counter.ops["GetItem"] == 6  # one consistent re-read per refresh, under its lease
    assert {store.get(p.member_id).refreshed_at >= now for p in due} == {True}


# ---------------------------------------------------------------------------- moved portal
def test_a_renamed_portal_is_followed_after_the_auth_server_confirms_and_stored(world):
    keeper = world.keeper()
    portal = world.install()
    new_domain = f"renamed-{portal.domain}"
    world.sim.rename_portal(portal.domain, new_domain)
    assert PortalClient(portal, keeper).call("server.time")
    moved = world.store.get(portal.member_id)
    assert moved.domain == new_domain and moved.client_endpoint.endswith(f"/p/{new_domain}/rest/")
    assert [c.domain for c in world.sim.calls_for(new_domain)] == [new_domain]


# ---------------------------------------------------------------------------- lease semantics
def test_the_lease_is_a_conditional_write_that_expires(world):
    key = LeaseKey.refresh("lease-test-member")
    t = time.time()
    assert world.leases.acquire(key, "a", 5, t)
    assert not world.leases.acquire(key, "b", 5, t + 1)
    world.leases.release(key, "b")  # not the holder: nothing happens
    assert world.leases.peek(key).holder == "a"
    assert world.leases.acquire(key, "b", 5, t + 6)  # a's lease expired
    world.leases.release(key, "b")
    assert world.leases.peek(key) is None


# ---------------------------------------------------------------------------- self-healing
@pytest.fixture
def receiver():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/events", bodies
    server.shutdown()
    server.server_close()


def test_an_onofflineevent_carrying_a_fresh_pair_heals_a_lost_portal(world, receiver):
    from b24core.bitrix.forms import parse_form
    from b24core.tokens.healing import adopt_from_event

    url, bodies = receiver
    keeper = world.keeper()
    portal = world.install()
    client = PortalClient(portal, keeper)
    client.call("event.bind", {"event": "ONOFFLINEEVENT", "handler": url, "options": {"minTimeout": 1}})
    client.call("event.bind", {"event": "ONCRMDEALADD", "event_type": "offline"})
    # The portal loses its refresh token...
    AuthServer(world.sim.oauth_url).refresh(CLIENT_ID, world.secret, portal.refresh_token)
    world.sim.expire_access_tokens(portal.domain)
    with pytest.raises(ReauthRequired):
        PortalClient(world.store.get(portal.member_id), keeper).call("server.time")
    # ...then a change in the portal makes Bitrix24 send ONOFFLINEEVENT with a new pair.
    world.sim.portal(portal.domain).ui_deal_add({"TITLE": "offline"})
    form = parse_form(wait_for(lambda: bodies[-1] if bodies else None, what="ONOFFLINEEVENT"))
    assert form["event"] == "ONOFFLINEEVENT" and form["auth"]["refresh_token"]
    app_info_before = sum(1 for r in world.sim.oauth.requests if r.kind == "app.info")
    result = adopt_from_event(form, keeper)
    assert result is not None and result.outcome == Outcome.ADOPTED
    assert sum(1 for r in world.sim.oauth.requests if r.kind == "app.info") == app_info_before + 1
    healed = world.store.get(portal.member_id)
    assert healed.token_state == TokenState.ACTIVE
    assert PortalClient(healed, keeper).call("server.time")
    # A healthy portal's next ONOFFLINEEVENT costs nothing at the auth server.
    assert adopt_from_event(form, keeper).outcome == Outcome.NOT_DUE
    assert sum(1 for r in world.sim.oauth.requests if r.kind == "app.info") == app_info_before + 1
    no_pair = {"event": "ONCRMDEALADD", "auth": {"member_id": portal.member_id}}
    assert adopt_from_event(no_pair, keeper) is None
