"""The delivery probe: sent, arrived or judged missed; the queue servers' list; what intake hands over."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from b24core.aws.apigw import HttpError
from b24core.aws.settings import ConfigurationError, DeliveryPolicy, Settings
from b24core.capabilities.manifest import load_manifest
from b24core.delivery.modes import DeliveryMode, ProbeOutcome, Trigger, next_mode
from b24core.delivery.offline import OfflinePuller
from b24core.delivery.probe import AppWorld, AppWorldCache, Prober, blocked_message
from b24core.delivery.runner import DeliveryRunner
from b24core.delivery.store import DeliveryState, InMemoryDeliveryStore, mutate
from b24core.events import signals as delivery
from b24core.events.queue_writer import QueueWriter
from b24core.portals.store import InMemoryPortalStore
from b24core.tokens.lease import InMemoryLeaseStore
from tests.unit.delivery_fakes import PORTAL, FakePortal, FakeSqs

URL = "https://app.example.com/events"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def prober(store, clock, **policy) -> Prober:
    return Prober(store, DeliveryPolicy(**policy), clock)


# ---------------------------------------------------------------- modes
def test_a_missed_probe_moves_online_to_pull_and_an_arrival_brings_it_back():
    assert next_mode(DeliveryMode.ONLINE, Trigger.PROBE_MISSED) == DeliveryMode.PULL
    assert next_mode(DeliveryMode.PULL, Trigger.PROBE_ARRIVED) == DeliveryMode.ONLINE


def test_lossless_is_an_operators_choice_probes_do_not_undo():
    assert next_mode(DeliveryMode.LOSSLESS, Trigger.PROBE_ARRIVED) == DeliveryMode.LOSSLESS
    assert next_mode(DeliveryMode.LOSSLESS, Trigger.PROBE_MISSED) == DeliveryMode.LOSSLESS
    assert next_mode(DeliveryMode.LOSSLESS, Trigger.LOSSLESS_OFF_BLOCKED) == DeliveryMode.PULL
    assert next_mode(DeliveryMode.LOSSLESS, Trigger.LOSSLESS_OFF) == DeliveryMode.ONLINE


def test_the_index_puts_portals_with_offline_work_in_the_pull_partition_by_due_time():
    online = DeliveryState("m1", next_probe_at=50)
    assert online.index_keys() == ("DELIVERY#online", "000000000050#m1")
    pending = replace(online, probe_outcome=ProbeOutcome.PENDING, probe_due_at=70)
    assert pending.index_keys() == ("DELIVERY#online", "000000000070#m1")
    assert replace(online, mode=DeliveryMode.PULL).index_keys()[0] == "DELIVERY#pull"
    assert replace(online, draining=True).index_keys()[0] == "DELIVERY#pull"  # bindings gone, records left
    assert replace(online, active=False).index_keys() == (None, None)  # uninstalled: off every schedule


# ---------------------------------------------------------------- the probe's steps
def test_a_probe_binds_onapptest_and_calls_event_test_with_a_nonce_in_one_request():
    store, clock, portal = InMemoryDeliveryStore(), Clock(), FakePortal()
    state = prober(store, clock, probe_timeout_s=300).send(portal, "m1", URL, "box")
    assert portal.calls.count("batch") == 1
    assert [b["event"] for b in portal.bindings] == ["ONAPPTEST"] and portal.bindings[0]["handler"] == URL
    assert portal.tests_sent == [state.probe_id] and len(state.probe_id) == 16
    assert state.probe_outcome == ProbeOutcome.PENDING and state.probe_due_at == clock.now + 300


def test_a_probe_sent_before_install_finished_is_deferred_and_never_judged():
    store, clock = InMemoryDeliveryStore(), Clock()
    state = prober(store, clock, probe_soon_s=60).send(FakePortal(installed=False), "m1", URL, "box")
    assert state.probe_outcome == ProbeOutcome.DEFERRED and state.next_probe_at == clock.now + 60
    clock.now += 10_000
    state, missed = prober(store, clock).judge("m1")
    assert not missed and state.mode == DeliveryMode.ONLINE


def test_a_probe_the_portal_refused_is_retried_later_not_judged():
    store, clock = InMemoryDeliveryStore(), Clock()
    portal = FakePortal(fail={"event.test": "ACCESS_DENIED"})
    state = prober(store, clock, probe_retry_s=900).send(portal, "m1", URL, "box")
    assert state.probe_outcome == ProbeOutcome.FAILED and "ACCESS_DENIED" in state.probe_reason
    assert state.next_probe_at == clock.now + 900 and not state.blocked


def test_a_probe_is_judged_missed_only_after_its_deadline():
    store, clock = InMemoryDeliveryStore(), Clock()
    p = prober(store, clock, probe_timeout_s=300, probe_interval_box_s=3600)
    p.send(FakePortal(), "m1", URL, "box")
    clock.now += 299
    state, missed = p.judge("m1")
    assert not missed and state.probe_outcome == ProbeOutcome.PENDING
    clock.now += 1
    state, missed = p.judge("m1")
    assert missed and state.mode == DeliveryMode.PULL and state.blocked_since == int(clock.now)
    assert state.probe_outcome == ProbeOutcome.MISSED and state.next_probe_at == int(clock.now) + 3600


def test_an_arrival_ends_the_blocked_spell_and_schedules_the_next_probe_by_kind():
    store, clock = InMemoryDeliveryStore(), Clock()
    p = prober(store, clock, probe_timeout_s=0, probe_interval_cloud_s=86400)
    sent = p.send(FakePortal(), "m1", URL, "cloud")
    p.judge("m1")
    mutate(store, "m1", lambda s: replace(s, notified_at=5))
    state, switched = p.arrived("m1", sent.probe_id)
    assert switched and state.mode == DeliveryMode.ONLINE and not state.blocked
    assert state.notified_at == 0 and state.probe_reason == ""
    assert state.next_probe_at == int(clock.now) + 86400


# ---------------------------------------------------------------- the queue servers' list
def test_the_queue_server_list_is_fetched_at_most_once_per_ttl_and_kept_when_a_fetch_fails():
    clock = Clock(0.0)
    answers: list[Any] = [{"nodes": ["3.217.33.54", "52.29.163.104"]}, ConnectionError("down")]

    def fetch(url: str, timeout: float) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    cache = AppWorldCache("https://dl.example/app-world.json", 600, fetch=fetch, clock=clock)
    assert cache.get().nodes == ("3.217.33.54", "52.29.163.104")
    clock.now = 599
    cache.get()
    assert cache.fetches == 1
    clock.now = 600
    assert cache.get().nodes == ("3.217.33.54", "52.29.163.104")  # the fetch failed: last good list
    clock.now = 640
    cache.get()
    assert cache.fetches == 2  # a failed fetch waits a minute, too


def test_only_addresses_from_the_list_are_passed_on():
    cache = AppWorldCache("u", 600, fetch=lambda u, t: {"nodes": ["1.2.3.4", "<script>", "2001:db8::1"]})
    assert cache.get().nodes == ("1.2.3.4", "2001:db8::1")


def test_the_admin_message_names_the_servers_or_the_published_list_when_it_is_unreachable():
    state = DeliveryState("m1", probe_sent_at=1_700_000_000, blocked_since=1_700_000_300)
    url = "https://dl.bitrix24.com/webhook/app-world.json"
    with_nodes = blocked_message(state, AppWorld(("3.217.33.54",), url, 1.0), "Deal mirror", "en")
    assert "3.217.33.54" in with_nodes and url in with_nodes and "Deal mirror" in with_nodes
    without = blocked_message(state, AppWorld((), url, 0.0), "Deal mirror", "ru")
    assert url in without and "network-access" in without and "3.217" not in without


# ---------------------------------------------------------------- intake's hand-over
class FakeLambda:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.invocations: list[dict[str, Any]] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        if self.error:
            raise self.error
        self.invocations.append({"fn": FunctionName, "type": InvocationType, "payload": json.loads(Payload)})
        return {"StatusCode": 202}


@pytest.fixture
def handed_over(monkeypatch: pytest.MonkeyPatch) -> FakeLambda:
    fake = FakeLambda()
    monkeypatch.setattr(delivery, "_lambda", lambda: fake)
    settings = Settings(delivery=DeliveryPolicy(pull_function="pull-fn"))
    monkeypatch.setattr(delivery, "get_settings", lambda: settings)
    return fake


FORM = {
    "event": "ONAPPTEST",
    "data": {"QUERY": {"probe": "0123456789abcdef"}},
    "auth": {
        "member_id": "m1",
        "application_token": "app-token-value",
        "access_token": "access-token-value",
        "refresh_token": "refresh-token-value",
    },
}


def test_an_arrived_probe_is_handed_over_asynchronously_without_any_token(handed_over):
    answer = delivery.on_delivery_event("ONAPPTEST", "m1", FORM)
    assert answer["status"] == "probe_received"
    (call,) = handed_over.invocations
    assert call["fn"] == "pull-fn" and call["type"] == "Event"
    assert call["payload"] == {
        "action": "probe_arrived",
        "member_id": "m1",
        "probe_id": "0123456789abcdef",
        "trigger": "ONAPPTEST",
    }
    sent = json.dumps(handed_over.invocations)
    assert not any(v in sent for v in ("app-token-value", "access-token-value", "refresh-token-value"))


def test_onofflineevent_asks_for_a_pull_and_leaves_its_tokens_behind(handed_over):
    form = {**FORM, "event": "ONOFFLINEEVENT", "data": []}
    assert delivery.on_delivery_event("ONOFFLINEEVENT", "m1", form)["status"] == "pull_requested"
    payload = handed_over.invocations[0]["payload"]
    assert payload == {"action": "pull", "member_id": "m1", "trigger": "ONOFFLINEEVENT"}


def test_a_probe_nonce_that_is_not_short_hex_is_not_believed(handed_over):
    form = {**FORM, "data": {"QUERY": {"probe": "x" * 10}}}
    delivery.on_delivery_event("ONAPPTEST", "m1", form)
    assert handed_over.invocations[0]["payload"]["probe_id"] == ""


def test_a_signal_lambda_did_not_take_is_answered_with_503(handed_over):
    handed_over.error = ConnectionError("lambda unreachable")
    with pytest.raises(HttpError) as err:
        delivery.on_delivery_event("ONAPPTEST", "m1", FORM)
    assert err.value.status == 503


# ---------------------------------------------------------------- the runner (the function's work)
def runner(clock: Clock, portal: FakePortal, nodes: tuple[str, ...] = ("3.217.33.54",)):
    portals = InMemoryPortalStore()
    portals.save(replace(PORTAL, version=0))
    store = InMemoryDeliveryStore()
    policy = DeliveryPolicy(probe_timeout_s=300)
    sqs = FakeSqs()
    r = DeliveryRunner(
        portals=portals,
        store=store,
        prober=Prober(store, policy, clock),
        puller=OfflinePuller(
            store, InMemoryLeaseStore(), QueueWriter(sqs, "q", sleep=lambda s: None), policy, clock=clock
        ),
        make_client=lambda p: portal,
        manifest=load_manifest(),
        policy=policy,
        default_events_url=URL,
        world=lambda: AppWorld(nodes, "https://dl.example/app-world.json", 1.0),
        clock=clock,
    )
    return r, store, sqs


def test_the_probe_schedule_judges_tells_the_admin_once_and_starts_pulling():
    clock, portal = Clock(), FakePortal()
    r, store, sqs = runner(clock, portal)
    r.probe("m1")
    assert r.probe_due()["judged_missed"] == 0  # not yet past its deadline
    clock.now += 301
    assert r.probe_due()["judged_missed"] == 1
    state = store.get("m1")
    assert state.mode == DeliveryMode.PULL and state.offline_bound and state.notified_at
    (note,) = portal.notifications
    assert note["USER_ID"] == "1" and "3.217.33.54" in note["MESSAGE"]
    portal.change("ONCRMDEALUPDATE", 5)
    assert r.pull_due()["enqueued"] == 1 and sqs.objects() == [("ONCRMDEALUPDATE", "5")]
    # The next probe is due an hour later (a box); it misses again: no second notification.
    clock.now += 3600
    assert r.probe_due()["sent"] == 1
    clock.now += 301
    r.probe_due()
    assert len(portal.notifications) == 1 and store.get("m1").misses == 2


def test_an_arrival_in_pull_mode_unbinds_and_drains_at_once():
    clock, portal = Clock(), FakePortal()
    r, store, sqs = runner(clock, portal)
    r.probe("m1")
    clock.now += 301
    r.probe_due()
    portal.change("ONCRMDEALADD", 9)
    answer = r.probe_arrived("m1", store.get("m1").probe_id)
    assert answer["mode"] == "online" and answer["pull"]["enqueued"] == 1
    assert not [b for b in portal.bindings if b["offline"]]
    assert not store.get("m1").has_offline_work


def test_an_operator_cannot_switch_a_blocked_portal_online_only_out_of_lossless():
    clock, portal = Clock(), FakePortal()
    r, store, _ = runner(clock, portal)
    assert r.set_mode("m1", "lossless")["mode"] == "lossless"
    assert {b["event"] for b in portal.bindings if b["offline"]} >= {"ONCRMDEALADD"}
    mutate(store, "m1", lambda s: replace(s, blocked_since=1))
    assert r.set_mode("m1", "online")["mode"] == "pull"
    assert r.set_mode("m1", "pull")["error"] == "bad_mode"


def test_rebind_makes_offline_bindings_again_and_leaves_an_online_portal_alone():
    clock, portal = Clock(), FakePortal()
    r, store, _ = runner(clock, portal)
    assert r.rebind("m1")["outcome"] == "idle"  # online: no offline bindings wanted
    assert not [b for b in portal.bindings if b["offline"]]
    r.set_mode("m1", "lossless")
    portal.bindings.clear()  # an admin removed them on the portal
    r.pull("m1")
    assert not [b for b in portal.bindings if b["offline"]]  # the pull believes they are still there
    r.rebind("m1")
    assert {b["event"] for b in portal.bindings if b["offline"]} >= {"ONCRMDEALADD"}
    assert store.get("m1").offline_bound


def test_a_gone_portal_leaves_every_schedule():
    clock, portal = Clock(), FakePortal()
    r, store, _ = runner(clock, portal)
    r.probe("m1")
    r.portals._items.clear()  # type: ignore[attr-defined]
    clock.now += 301
    assert r.probe_due()["skipped"] == 1
    assert store.get("m1").index_keys() == (None, None)


# ---------------------------------------------------------------- settings
def test_delivery_settings_are_read_once_and_checked():
    policy = Settings.from_env(
        {
            "B24_PROBE_TIMEOUT_S": "120",
            "B24_APP_WORLD_URL": "http://127.0.0.1:9/w.json",
            "OFFLINE_PULL_FUNCTION": "f",
        }
    ).delivery
    assert (
        policy.probe_timeout_s == 120
        and policy.app_world_url.endswith("/w.json")
        and policy.pull_function == "f"
    )
    with pytest.raises(ConfigurationError):
        Settings.from_env({"B24_APP_WORLD_TTL_S": "10"})  # the docs ask for once a minute at most
    with pytest.raises(ConfigurationError):
        Settings.from_env({"B24_PROBE_INTERVAL_BOX_S": "60"})
    with pytest.raises(ConfigurationError):
        Settings.from_env({"B24_PULL_BATCH_SIZE": "0"})
