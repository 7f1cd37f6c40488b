"""Keep-alive sweep, rate limiter, token index keys, settings and the client_secret source."""

from __future__ import annotations

from dataclasses import replace

import pytest

from b24core.aws.secrets import ClientSecret
from b24core.aws.settings import ConfigurationError, Settings, TokenPolicy
from b24core.portals import token_index
from b24core.portals.states import PortalState, TokenState
from b24core.tokens.lease import LeaseKey
from b24core.tokens.outcomes import Outcome, RefreshReason
from b24core.tokens.sweep import AuthPace, Sweep, census

from ._token_fakes import DAY, NOW, FakeClock, make_keeper, make_portal


def seed(store, auth, ages_days: dict[str, float]):
    for member, age in ages_days.items():
        store.save(make_portal(auth, member, refreshed_at=int(NOW - age * DAY)))


def test_sweep_refreshes_only_portals_whose_refresh_token_is_getting_old():
    keeper, store, auth, clock, leases = make_keeper()
    seed(store, auth, {"a": 30.01, "b": 45, "c": 10, "d": 1, "e": 27.9})
    sweep = Sweep(store, keeper, leases, keeper.policy, clock=clock, limiter=AuthPace(1000))
    report = sweep.run()
    assert report.refreshed == 2 and report.done
    assert {m for m in "abcde" if store.get(m).refreshed_at == NOW} == {"a", "b"}
    assert report.due_read == 2 and report.items_read == 2  # it read only what was due
    # A second run finds nothing: refreshed portals left the due range of the index.
    assert sweep.run().due_read == 0
    assert auth.refreshes == ["ok", "ok"]


def test_jitter_brings_a_portal_due_at_most_two_days_early_never_late():
    keeper, store, auth, clock, leases = make_keeper()
    for i in range(200):
        store.save(make_portal(auth, f"m{i}", refreshed_at=NOW - 29 * DAY))
    due = Sweep(store, keeper, leases, keeper.policy, clock=clock).due_count()["keepalive"]
    assert 0 < due < 200  # portals refreshed together come due spread over two days
    late = type(store)()
    for i in range(50):
        late.save(make_portal(auth, f"n{i}", refreshed_at=NOW - 30 * DAY - 1))
    assert Sweep(late, keeper, leases, keeper.policy, clock=clock).due_count()["keepalive"] == 50


def test_sweep_runs_scheduled_retries_and_the_daily_payment_probe():
    keeper, store, auth, clock, leases = make_keeper()
    failing = make_portal(auth, "failing", token_state=TokenState.REFRESH_FAILING, next_attempt_at=NOW - 5)
    later = make_portal(auth, "later", token_state=TokenState.REFRESH_FAILING, next_attempt_at=NOW + 600)
    unpaid = make_portal(auth, "unpaid", token_state=TokenState.PAYMENT_REQUIRED, next_attempt_at=NOW - 5)
    lost = make_portal(auth, "lost", token_state=TokenState.REAUTH_REQUIRED, refreshed_at=NOW - 90 * DAY)
    for p in (failing, later, unpaid, lost):
        store.save(p)
    report = Sweep(store, keeper, leases, keeper.policy, clock=clock, limiter=AuthPace(1000)).run()
    assert report.outcomes == {"refreshed": 2}
    assert store.get("failing").token_state == TokenState.ACTIVE
    assert store.get("unpaid").token_state == TokenState.ACTIVE
    assert store.get("later").token_state == TokenState.REFRESH_FAILING
    assert store.get("lost").token_state == TokenState.REAUTH_REQUIRED


def test_sweep_stops_before_the_deadline_and_the_next_run_resumes():
    keeper, store, auth, clock, leases = make_keeper()
    seed(store, auth, {f"m{i:02d}": 40 for i in range(30)})
    left = [120_000]

    def time_left() -> int:
        left[0] -= 10_000  # every check costs 10 s of the Lambda's budget
        return left[0]

    sweep = Sweep(store, keeper, leases, replace(keeper.policy, sweep_concurrency=1), clock=clock)
    sweep.limiter = AuthPace(1000)
    first = sweep.run(time_left_ms=time_left)
    assert first.stopped_early and not first.done and 0 < first.refreshed < 30
    second = sweep.run(max_portals=100)
    assert second.done and first.refreshed + second.refreshed == 30
    assert auth.ok_refreshes == 30


def test_only_one_sweep_runs_at_a_time():
    keeper, store, auth, clock, leases = make_keeper()
    seed(store, auth, {"a": 40})
    leases.acquire(LeaseKey.sweep(), "another-sweep", 900, clock())
    report = Sweep(store, keeper, leases, keeper.policy, clock=clock).run()
    assert report.skipped_sweep and report.refreshed == 0 and auth.refreshes == []


def test_rate_limiter_spaces_requests_to_the_cap():
    clock = FakeClock(0)
    limiter = AuthPace(5.0, clock=clock, sleep=clock.sleep)
    for _ in range(11):
        limiter.acquire()
    assert clock.now == pytest.approx(2.0)  # 11 requests at 5/s: the last one at t=2 s


def test_sweep_passes_its_rate_cap_to_the_auth_server_calls():
    keeper, store, auth, clock, leases = make_keeper()
    seed(store, auth, {f"m{i}": 40 for i in range(10)})
    limiter = AuthPace(5.0, clock=clock, sleep=clock.sleep)
    report = Sweep(store, keeper, leases, keeper.policy, clock=clock, limiter=limiter).run()
    assert report.refreshed == 10 and report.auth_requests == 10 and limiter.granted == 10


def test_census_counts_each_state_through_the_index():
    keeper, store, auth, clock, leases = make_keeper()
    seed(store, auth, {"a": 40, "b": 3})
    store.save(make_portal(auth, "f", token_state=TokenState.REFRESH_FAILING, next_attempt_at=NOW + 60))
    store.save(make_portal(auth, "p", token_state=TokenState.PAYMENT_REQUIRED, next_attempt_at=NOW - 1))
    store.save(make_portal(auth, "r", token_state=TokenState.REAUTH_REQUIRED))
    gone = make_portal(auth, "u", state=PortalState.DELETED, token_state=TokenState.UNINSTALLED)
    store.save(replace(gone, refresh_token=""))
    report = census(store, keeper.policy, NOW)
    assert report["states"] == {
        "active": 2,
        "refresh_failing": 1,
        "payment_required": 1,
        "reauth_required": 1,
        "uninstalled": 1,
    }
    assert report["due"] == {"retry": 1, "keepalive": 1}
    assert report["oldest_refresh"]["member_id"] == "a"


def test_index_keys_place_each_state_in_its_partition():
    keeper, store, auth, clock, leases = make_keeper()
    p = make_portal(auth, "x", refreshed_at=NOW)
    assert token_index.index_keys(p)[0] == token_index.REFRESH
    assert token_index.index_keys(replace(p, token_state=TokenState.REFRESH_FAILING))[0] == "RETRY"
    assert token_index.index_keys(replace(p, token_state=TokenState.REAUTH_REQUIRED))[0] == "REAUTH"
    assert token_index.index_keys(replace(p, state=PortalState.NEW))[0] is None
    assert token_index.index_keys(replace(p, refresh_token=""))[0] is None


def test_token_policy_defaults_and_validation():
    policy = Settings.from_env({}).tokens
    assert policy.keepalive_age_s == 30 * DAY and policy.min_interval_s == DAY
    assert policy.auth_rate_per_s == 5 and policy.sweep_concurrency == 4
    custom = TokenPolicy.from_env({"B24_REFRESH_KEEPALIVE_DAYS": "45", "B24_AUTH_RATE_PER_S": "2"})
    assert custom.keepalive_age_s == 45 * DAY and custom.auth_rate_per_s == 2
    for bad in (
        {"B24_REFRESH_MIN_INTERVAL_HOURS": "1"},  # hourly refreshes get apps blocked
        {"B24_REFRESH_KEEPALIVE_DAYS": "170"},  # too close to the 180-day death
        {"B24_AUTH_RATE_PER_S": "0"},
        {"B24_SWEEP_CONCURRENCY": "500"},
        {"B24_REFRESH_KEEPALIVE_DAYS": "soon"},
    ):
        with pytest.raises(ConfigurationError):
            TokenPolicy.from_env(bad)


def test_client_secret_comes_from_the_environment_only_locally():
    local = Settings(local=True, client_secret="local-secret-value")
    assert ClientSecret(local)() == "local-secret-value"
    with pytest.raises(ConfigurationError):
        ClientSecret(Settings(local=False, client_secret="x", client_secret_param=""))()


def test_client_secret_in_aws_is_read_through_powertools_parameters_cached(monkeypatch):
    from aws_lambda_powertools.utilities import parameters

    seen = []

    def get_parameter(name, decrypt=False, max_age=None, force_fetch=False):
        seen.append(("ssm", name, decrypt, max_age, force_fetch))
        return "ssm-secret-value"

    def get_secret(name, max_age=None, force_fetch=False):
        seen.append(("sm", name, max_age, force_fetch))
        return "sm-secret-value"

    monkeypatch.setattr(parameters, "get_parameter", get_parameter)
    monkeypatch.setattr(parameters, "get_secret", get_secret)
    ssm = ClientSecret(Settings(client_secret_param="/b24app/client_secret"))
    assert ssm() == "ssm-secret-value" and ssm(force=True) == "ssm-secret-value"
    sm = ClientSecret(Settings(client_secret_param="secretsmanager:b24app/client"))
    assert sm() == "sm-secret-value"
    assert seen == [
        ("ssm", "/b24app/client_secret", True, 300, False),
        ("ssm", "/b24app/client_secret", True, 300, True),
        ("sm", "b24app/client", 300, False),
    ]


def test_sweep_outcome_when_a_portal_is_refreshed_by_a_peer_meanwhile():
    keeper, store, auth, clock, leases = make_keeper()
    seed(store, auth, {"a": 40})
    stale_view = store.get("a")
    keeper.attempt(stale_view, RefreshReason.MANUAL)
    result = keeper.attempt(stale_view, RefreshReason.KEEPALIVE)
    assert result.outcome == Outcome.NOT_DUE and auth.ok_refreshes == 1
