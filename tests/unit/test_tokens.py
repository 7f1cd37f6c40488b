"""Token custody rules with an in-memory store, in-memory leases and a single-use fake auth server."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from b24core.aws.metrics import record_metrics
from b24core.portals.states import PortalState, TokenState
from b24core.portals.store import InMemoryPortalStore
from b24core.tokens.keeper import TokenKeeper
from b24core.tokens.lease import InMemoryLeaseStore, LeaseKey
from b24core.tokens.outcomes import (
    Outcome,
    ReauthRequired,
    RefreshReason,
    RefreshUnavailable,
    StaticSecret,
    SubscriptionExpired,
)

from ._token_fakes import DAY, NOW, SECRET, FakeAuthServer, FakeClock, make_keeper, make_portal, policy


def test_expired_token_refreshes_once_and_saves_the_new_pair():
    keeper, store, auth, clock, _ = make_keeper()
    portal = store.save(make_portal(auth, refreshed_at=NOW - 3600))
    with record_metrics() as m:
        fresh = keeper.refresh(portal)
    assert auth.refreshes == ["ok"]
    stored = store.get("m1")
    assert stored.access_token == fresh.access_token != portal.access_token
    assert stored.refresh_token != portal.refresh_token
    assert stored.refreshed_at == NOW and stored.token_state == TokenState.ACTIVE
    assert m.total("TokensRefreshed", reason="expired") == 1


def test_a_caller_holding_an_old_token_uses_the_peers_pair_without_refreshing():
    keeper, store, auth, _, _ = make_keeper()
    seen = store.save(make_portal(auth))
    keeper.refresh(seen)
    again = keeper.refresh(seen)  # the same stale view: a peer (the first call) already refreshed
    assert auth.refreshes == ["ok"]
    assert again.access_token == store.get("m1").access_token


def test_invalid_grant_rereads_the_store_and_keeps_a_pair_a_peer_rotated_meanwhile():
    keeper, store, auth, _, _ = make_keeper()
    seen = store.save(make_portal(auth))
    auth.valid.discard(seen.refresh_token)  # our token was spent by a peer...

    def peer_saves(_token):  # ...who is saving its new pair while we ask
        current = store.get("m1")
        a, r = auth.issue()
        store.save(replace(current, access_token=a, refresh_token=r))

    auth.on_refresh = peer_saves
    result = keeper.attempt(seen, RefreshReason.EXPIRED)
    assert result.outcome == Outcome.PEER_REFRESHED
    assert store.get("m1").token_state == TokenState.ACTIVE


def test_confirmed_invalid_grant_moves_to_reauth_required_and_nowhere_else():
    keeper, store, auth, clock, _ = make_keeper()
    seen = store.save(make_portal(auth))
    auth.valid.clear()
    with record_metrics() as m, pytest.raises(ReauthRequired):
        keeper.refresh(seen)
    stored = store.get("m1")
    assert stored.token_state == TokenState.REAUTH_REQUIRED
    assert stored.token_state_reason == "invalid_grant"
    assert stored.state == PortalState.ACTIVE  # still installed: the admin only has to open the app
    assert stored.refresh_token == seen.refresh_token  # nothing overwritten
    assert m.total("TokenStateEntered", state="reauth_required") == 1
    assert m.total("RefreshFailed", reason="invalid_grant") == 1
    # A lost portal is not refreshed again on later calls: nothing reaches the auth server.
    with pytest.raises(ReauthRequired):
        keeper.refresh(stored)
    assert auth.refreshes == ["invalid_grant"]


def test_payment_required_moves_to_payment_required_probed_daily_and_nowhere_else():
    keeper, store, auth, clock, _ = make_keeper()
    seen = store.save(make_portal(auth))
    auth.payment_required = True
    with pytest.raises(SubscriptionExpired):
        keeper.refresh(seen)
    stored = store.get("m1")
    assert stored.token_state == TokenState.PAYMENT_REQUIRED
    assert stored.next_attempt_at >= NOW + DAY
    assert auth.valid >= {seen.refresh_token}  # the refresh token was not spent
    # Calls fail fast until the daily probe; the probe after payment brings it back.
    with pytest.raises(SubscriptionExpired):
        keeper.refresh(stored)
    assert auth.refreshes == ["payment_required"]
    auth.payment_required = False
    clock.advance(2 * DAY)
    result = keeper.attempt(store.get("m1"), RefreshReason.RETRY)
    assert result.outcome == Outcome.REFRESHED
    assert store.get("m1").token_state == TokenState.ACTIVE


def test_auth_server_down_keeps_the_portal_and_backs_off_then_recovers():
    keeper, store, auth, clock, _ = make_keeper()
    seen = store.save(make_portal(auth))
    auth.down = True
    with pytest.raises(RefreshUnavailable) as err:
        keeper.refresh(seen)
    failing = store.get("m1")
    assert failing.token_state == TokenState.REFRESH_FAILING
    assert err.value.retryable and err.value.retry_at == failing.next_attempt_at > NOW
    # Until the next attempt, callers fail fast without knocking on the auth server again.
    with pytest.raises(RefreshUnavailable):
        keeper.refresh(seen)
    assert auth.refreshes == ["down"]
    # Backoff grows with every failure.
    clock.now = failing.next_attempt_at
    keeper.attempt(store.get("m1"), RefreshReason.RETRY)
    second = store.get("m1")
    assert second.refresh_attempts == 2
    assert second.next_attempt_at - clock.now > failing.next_attempt_at - NOW
    auth.down = False
    clock.now = second.next_attempt_at
    assert keeper.refresh(seen).token_state == TokenState.ACTIVE
    back = store.get("m1")
    assert back.refresh_attempts == 0 and back.next_attempt_at == 0
    assert auth.refreshes == ["down", "down", "ok"]


def test_a_rotated_client_secret_is_fetched_again_once():
    auth = FakeAuthServer()
    fetched = []

    class RotatingSecret:
        def __call__(self, force: bool = False) -> str:
            fetched.append(force)
            return SECRET if force else "old-secret"

    from b24core.bitrix.errors import InvalidClient

    real = auth.refresh

    def refresh(client_id, secret, token):
        if secret != SECRET:
            raise InvalidClient("Invalid client credentials")
        return real(client_id, secret, token)

    auth.refresh = refresh
    store = InMemoryPortalStore()
    keeper = TokenKeeper(store, auth, "app.unit", RotatingSecret(), InMemoryLeaseStore(), policy())
    seen = store.save(make_portal(auth))
    keeper.refresh(seen)
    assert fetched == [False, True]
    assert auth.refreshes == ["ok"]


def test_twenty_threads_on_one_expired_portal_cause_exactly_one_refresh():
    auth = FakeAuthServer()
    # The refresh takes a while, so the other nineteen really are inside attempt() meanwhile: without
    # the lease each of them would send the same refresh token (and all but one get invalid_grant).
    auth.on_refresh = lambda _token: time.sleep(0.05)
    store = InMemoryPortalStore()
    keeper = TokenKeeper(store, auth, "app.unit", StaticSecret(SECRET), InMemoryLeaseStore(), policy())
    for _ in range(5):
        seen = store.get("m1") or store.save(make_portal(auth))
        barrier = threading.Barrier(20)
        results: list[str] = []

        def caller(portal=seen, barrier=barrier, results=results):
            barrier.wait()
            results.append(keeper.refresh(portal).access_token)

        threads = [threading.Thread(target=caller) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 20 and len(set(results)) == 1 and results[0] != seen.access_token
    assert auth.refreshes == ["ok"] * 5


def test_a_crashed_holders_lease_expires_and_the_next_caller_takes_over():
    keeper, store, auth, clock, leases = make_keeper(wait_s=60, lease_s=30)
    seen = store.save(make_portal(auth))
    assert leases.acquire(LeaseKey.refresh("m1"), "crashed-lambda", 30, clock())
    # The caller waits (polling the store), the dead holder never saves; after 30 s the lease is free.
    fresh = keeper.refresh(seen)
    assert fresh.access_token != seen.access_token
    assert 30 <= clock.now - NOW < 32
    assert auth.refreshes == ["ok"]


def test_a_caller_gives_up_waiting_with_a_retryable_error_when_the_lease_stays_held():
    keeper, store, auth, clock, leases = make_keeper(wait_s=2, lease_s=30)
    seen = store.save(make_portal(auth))
    leases.acquire(LeaseKey.refresh("m1"), "slow-peer", 30, clock())
    with pytest.raises(RefreshUnavailable):
        keeper.refresh(seen)
    assert auth.refreshes == []
    assert store.get("m1").token_state == TokenState.ACTIVE


def test_keepalive_respects_age_and_the_one_day_minimum():
    keeper, store, auth, clock, _ = make_keeper()
    young = store.save(make_portal(auth, "young", refreshed_at=NOW - 10 * DAY))
    old = store.save(make_portal(auth, "old", refreshed_at=NOW - 31 * DAY))
    assert keeper.attempt(young, RefreshReason.KEEPALIVE).outcome == Outcome.NOT_DUE
    assert keeper.attempt(old, RefreshReason.KEEPALIVE).outcome == Outcome.REFRESHED
    # An operator's manual refresh is refused within the minimum interval, and counted as nothing.
    refreshed = store.get("old")
    assert keeper.attempt(refreshed, RefreshReason.MANUAL).outcome == Outcome.TOO_SOON
    clock.advance(DAY + 1)
    assert keeper.attempt(store.get("old"), RefreshReason.MANUAL).outcome == Outcome.REFRESHED
    assert auth.refreshes == ["ok", "ok"]


def test_keepalive_skips_a_portal_a_peer_holds_without_waiting():
    keeper, store, auth, clock, leases = make_keeper()
    old = store.save(make_portal(auth, "old", refreshed_at=NOW - 40 * DAY))
    leases.acquire(LeaseKey.refresh("old"), "peer", 30, clock())
    assert keeper.attempt(old, RefreshReason.KEEPALIVE).outcome == Outcome.BUSY
    assert clock.slept == []


def test_adopt_restores_reauth_required_after_checking_the_pair_at_the_auth_server():
    keeper, store, auth, clock, _ = make_keeper()
    seen = store.save(make_portal(auth))
    auth.valid.clear()
    with pytest.raises(ReauthRequired):
        keeper.refresh(seen)
    access, refresh = auth.issue()
    with record_metrics() as m:
        result = keeper.adopt("m1", access, refresh, 3600, source="ONAPPUPDATE")
    assert result.outcome == Outcome.ADOPTED
    healed = store.get("m1")
    assert healed.token_state == TokenState.ACTIVE
    assert healed.refresh_token == refresh and healed.refreshed_at == NOW
    assert auth.app_info_calls == 1
    assert m.total("TokenStateEntered", state="active") == 1


def test_adopt_refuses_a_pair_the_auth_server_does_not_vouch_for():
    keeper, store, auth, clock, _ = make_keeper()
    store.save(make_portal(auth, token_state=TokenState.REAUTH_REQUIRED))
    result = keeper.adopt("m1", "forged-access", "forged-refresh", 3600)
    assert result.outcome == Outcome.REJECTED
    assert store.get("m1").token_state == TokenState.REAUTH_REQUIRED
    auth.client_id = "someone.else"
    access, refresh = auth.issue()
    assert keeper.adopt("m1", access, refresh).outcome == Outcome.REJECTED
    assert store.get("m1").refresh_token != refresh


def test_adopt_ignores_healthy_portals_without_asking_the_auth_server():
    keeper, store, auth, clock, _ = make_keeper()
    store.save(make_portal(auth))
    access, refresh = auth.issue()
    assert keeper.adopt("m1", access, refresh).outcome == Outcome.NOT_DUE
    assert auth.app_info_calls == 0


def test_adopt_on_a_due_portal_takes_only_the_same_users_pair():
    keeper, store, auth, clock, _ = make_keeper()
    store.save(make_portal(auth, refreshed_at=NOW - 40 * DAY))
    other_access, other_refresh = auth.issue(user_id="7")
    assert keeper.adopt("m1", other_access, other_refresh).outcome == Outcome.NOT_DUE
    access, refresh = auth.issue(user_id="1")
    assert keeper.adopt("m1", access, refresh).outcome == Outcome.ADOPTED
    assert store.get("m1").refreshed_at == NOW  # the keep-alive clock restarted without a refresh
    assert auth.refreshes == []


def test_uninstalled_portals_are_never_refreshed_nor_revived():
    keeper, store, auth, clock, _ = make_keeper()
    seen = store.save(make_portal(auth))
    gone = replace(
        seen.with_state(PortalState.DELETED).with_token_state(TokenState.UNINSTALLED),
        access_token="",
        refresh_token="",
    )
    store.save(gone)
    assert keeper.attempt(seen, RefreshReason.EXPIRED).outcome == Outcome.NOT_INSTALLED
    access, refresh = auth.issue()
    assert keeper.adopt("m1", access, refresh).outcome == Outcome.NOT_INSTALLED
    assert auth.refreshes == [] and auth.app_info_calls == 0


def test_a_pair_refreshed_while_the_portal_was_uninstalled_is_discarded():
    keeper, store, auth, clock, _ = make_keeper()
    seen = store.save(make_portal(auth))

    def uninstall_meanwhile(_token):
        current = store.get("m1")
        store.save(current.with_state(PortalState.DELETED).with_token_state(TokenState.UNINSTALLED))

    auth.on_refresh = uninstall_meanwhile
    assert keeper.attempt(seen, RefreshReason.EXPIRED).outcome == Outcome.NOT_INSTALLED
    assert store.get("m1").token_state == TokenState.UNINSTALLED


def test_a_concurrent_non_token_write_does_not_lose_the_new_pair():
    keeper, store, auth, clock, _ = make_keeper()
    seen = store.save(make_portal(auth))

    def capability_write(_token):
        current = store.get("m1")
        store.save(replace(current, capabilities={"features": {}}))

    auth.on_refresh = capability_write
    fresh = keeper.refresh(seen)
    stored = store.get("m1")
    assert stored.refresh_token == fresh.refresh_token != seen.refresh_token
    assert stored.capabilities == {"features": {}}


def test_static_secret_never_shows_its_value():
    assert SECRET not in repr(StaticSecret(SECRET))


def test_refresh_uses_real_time_by_default():
    auth = FakeAuthServer()
    store = InMemoryPortalStore()
    keeper = TokenKeeper(store, auth, "app.unit", StaticSecret(SECRET), InMemoryLeaseStore())
    seen = store.save(make_portal(auth, refreshed_at=int(time.time())))
    assert keeper.refresh(seen).refreshed_at >= int(time.time()) - 5


class _PeerSavesWhileWeWait(FakeClock):
    """A clock whose first sleep is when a peer Lambda stores the pair it just got."""

    def __init__(self, on_first_sleep) -> None:
        super().__init__()
        self.on_first_sleep = on_first_sleep

    def sleep(self, seconds: float) -> None:
        hook, self.on_first_sleep = self.on_first_sleep, None
        if hook is not None:
            hook()
        super().sleep(seconds)


def test_invalid_grant_waits_out_the_grace_and_takes_the_pair_a_peer_saves_meanwhile():
    store = InMemoryPortalStore()
    auth = FakeAuthServer()
    seen = store.save(make_portal(auth))
    auth.valid.discard(seen.refresh_token)  # a peer spent our token and has not saved its pair yet

    def peer_saves() -> None:
        a, r = auth.issue()
        store.save(replace(store.get("m1"), access_token=a, refresh_token=r))

    clock = _PeerSavesWhileWeWait(peer_saves)
    keeper, *_ = make_keeper(auth=auth, clock=clock, store=store)
    result = keeper.attempt(seen, RefreshReason.EXPIRED)
    assert result.outcome == Outcome.PEER_REFRESHED
    stored = store.get("m1")
    assert stored.token_state == TokenState.ACTIVE and stored.refresh_token != seen.refresh_token


def test_an_operators_refresh_of_an_expired_portal_whose_refresh_failed_is_honoured():
    keeper, store, auth, clock, _ = make_keeper()
    seen = store.save(make_portal(auth, access_expires_at=NOW + 60))
    clock.advance(120)  # the access token expired; the auth server is briefly down
    auth.down = True
    assert keeper.attempt(seen, RefreshReason.EXPIRED).outcome == Outcome.FAILING
    assert store.get("m1").token_state == TokenState.REFRESH_FAILING
    auth.down = False
    # Minutes later, well within the one-day minimum and before the backoff's next attempt.
    result = keeper.attempt(store.get("m1"), RefreshReason.MANUAL)
    assert result.outcome == Outcome.REFRESHED
    assert store.get("m1").token_state == TokenState.ACTIVE
    assert auth.refreshes == ["down", "ok"]


def test_a_refresh_refused_because_the_app_is_gone_uninstalls_the_portal_once_confirmed():
    keeper, store, auth, _, _ = make_keeper()
    seen = store.save(make_portal(auth, refreshed_at=NOW - 40 * DAY))
    auth.uninstalled = True  # removed from the portal; its ONAPPUNINSTALL never arrived
    with record_metrics() as m:
        result = keeper.attempt(seen, RefreshReason.KEEPALIVE)
    assert result.outcome == Outcome.NOT_INSTALLED
    stored = store.get("m1")
    assert stored.state == PortalState.DELETED and stored.token_state == TokenState.UNINSTALLED
    assert stored.access_token == stored.refresh_token == stored.application_token == ""
    assert stored.token_state_reason == "not_installed"
    assert m.total("TokenStateEntered", state="uninstalled") == 1
    # Nothing is retried any more: the sweep and the calls stop asking the auth server.
    sent = len(auth.refreshes)
    assert keeper.attempt(stored, RefreshReason.RETRY).outcome == Outcome.NOT_INSTALLED
    assert len(auth.refreshes) == sent


def test_a_wrong_client_secret_is_not_taken_for_an_uninstall():
    keeper, store, auth, _, _ = make_keeper()
    seen = store.save(make_portal(auth, refreshed_at=NOW - 40 * DAY))
    auth.bad_secret = True  # every portal would hear invalid_client; this one's token still works
    result = keeper.attempt(seen, RefreshReason.KEEPALIVE)
    assert result.outcome == Outcome.FAILING
    stored = store.get("m1")
    assert stored.state == PortalState.ACTIVE and stored.token_state == TokenState.REFRESH_FAILING
    assert stored.refresh_token == seen.refresh_token
