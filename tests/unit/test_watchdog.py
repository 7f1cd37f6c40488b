"""The delivery watchdog's pure parts: the verdict (grace boundary, no changes, events after changes,
the intake's one-write-a-minute slack), the portal's clock, the intake's arrival marks, the logged
events-mode switch and the isolation record it keeps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from b24core.aws.apigw import HttpError
from b24core.aws.settings import Settings
from b24core.bitrix.rest import RestAnswer
from b24core.capabilities.isolation import AuthReach, QueueReach, isolation_record, summary_line, with_queue
from b24core.delivery.portal_clock import PortalClock
from b24core.delivery.watchdog import SLACK_S, judge
from b24core.events.arrivals import MARK_EVERY_S, ArrivalMarks, InMemoryArrivals
from b24core.events.auth_cache import AuthCache, PortalAuth
from b24core.events.intake import EventIntake
from b24core.portals.states import PortalState
from b24core.portals.webhook_store import InMemoryWebhookStore, WebhookConnection
from b24core.trust.webhooks import switch_events

NOW = 1_800_000_000.0
GRACE = 300


# ---------------------------------------------------------------- the verdict
def test_no_changes_give_no_verdict_whatever_arrived():
    assert judge([], NOW, GRACE, None) is None
    assert judge([], NOW, GRACE, NOW - 10) is None


def test_changes_inside_the_grace_period_wait():
    assert judge([NOW - GRACE + 1, NOW - 5], NOW, GRACE, None) is None


def test_the_grace_boundary_is_inclusive():
    assert judge([NOW - GRACE], NOW, GRACE, None) == QueueReach.UNREACHABLE
    assert judge([NOW - GRACE + 0.5], NOW, GRACE, None) is None


def test_an_event_after_the_changes_means_ok():
    changes = [NOW - 900, NOW - 400]
    assert judge(changes, NOW, GRACE, NOW - 399) == QueueReach.OK
    assert judge(changes, NOW, GRACE, None) == QueueReach.UNREACHABLE


def test_only_the_newest_old_change_counts_and_young_ones_never():
    # An event after an older change does not prove a newer one was delivered...
    assert judge([NOW - 900, NOW - 400], NOW, GRACE, NOW - 800) == QueueReach.UNREACHABLE
    # ...and a young change without its event yet is no evidence either way.
    assert judge([NOW - 900, NOW - 10], NOW, GRACE, NOW - 850) == QueueReach.OK


def test_the_intakes_write_throttle_is_allowed_for():
    change = NOW - 400
    assert judge([change], NOW, GRACE, change - SLACK_S) == QueueReach.OK
    assert judge([change], NOW, GRACE, change - SLACK_S - 1) == QueueReach.UNREACHABLE
    assert SLACK_S > MARK_EVERY_S


# ---------------------------------------------------------------- the portal's clock
def answer(time_block: dict) -> RestAnswer:
    return RestAnswer(result=[], total=None, next=None, time=time_block, raw={})


def test_the_portals_clock_is_measured_from_the_answer_and_kept_in_its_offset():
    moscow = timezone(timedelta(hours=3))
    portal_now = NOW + 42.5
    stamp = datetime.fromtimestamp(portal_now, moscow).isoformat(timespec="seconds")
    clock = PortalClock.from_answer(answer({"start": portal_now, "date_start": stamp}), NOW)
    assert clock.now == portal_now and clock.skew == pytest.approx(42.5) and clock.zone == moscow
    assert clock.format(NOW).endswith("+03:00") and clock.ts(clock.format(NOW)) == int(NOW)
    assert clock.ts("2026-01-01T00:00:00") == datetime(2026, 1, 1, tzinfo=moscow).timestamp()  # no offset
    assert clock.ts("not a date") is None


def test_without_a_start_the_date_is_used_and_without_both_no_skew():
    stamp = datetime.fromtimestamp(NOW + 10, UTC).isoformat(timespec="seconds")
    assert PortalClock.from_answer(answer({"date_start": stamp}), NOW).skew == 10
    assert PortalClock.from_answer(answer({}), NOW).skew == 0


# ---------------------------------------------------------------- arrival marks
def test_arrivals_are_written_at_most_once_a_minute_per_portal():
    now = [NOW]
    store = InMemoryArrivals()
    marks = ArrivalMarks(store, clock=lambda: now[0])
    for _ in range(100):
        marks.seen("m1")
    marks.seen("m2")
    assert store.writes == 2 and store.last("m1") == int(NOW)
    now[0] += MARK_EVERY_S - 1
    marks.seen("m1")
    assert store.writes == 2
    now[0] += 1
    marks.seen("m1")
    assert store.writes == 3 and store.last("m1") == int(NOW) + MARK_EVERY_S


class Broken:
    calls = 0

    def write(self, member_id: str, at: int) -> None:
        self.calls += 1
        raise ConnectionError("table unavailable")


def test_a_failed_mark_never_fails_the_intake_and_is_not_retried_per_event():
    writer = Broken()
    marks = ArrivalMarks(writer, clock=lambda: NOW)
    for _ in range(10):
        marks.seen("m1")
    assert writer.calls == 1


class Reader:
    def __init__(self, auth: PortalAuth) -> None:
        self.auth = auth

    def read(self, member_id: str) -> PortalAuth | None:
        return self.auth if member_id == self.auth.member_id else None


class Sink:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list = []
        self.fail = fail

    def send(self, message) -> None:
        if self.fail:
            raise RuntimeError("SQS refused")
        self.sent.append(message)


class Marks:
    def __init__(self) -> None:
        self.seen_for: list[str] = []

    def seen(self, member_id: str) -> None:
        self.seen_for.append(member_id)


def form(token: str, event: str = "ONCRMDEALUPDATE") -> dict:
    auth = {"member_id": "m1", "domain": "box.example", "application_token": token}
    return {"event": event, "data": {"FIELDS": {"ID": "7"}}, "ts": "1", "auth": auth}


def intake(sink: Sink) -> tuple[EventIntake, Marks]:
    marks = Marks()
    auth = PortalAuth("m1", PortalState.ACTIVE, "app-1", "hook-1")
    return EventIntake(AuthCache(Reader(auth)), sink, arrivals=marks), marks


def test_only_stored_outgoing_webhook_events_mark_an_arrival():
    box, marks = intake(Sink())
    box.accept(form("app-1"))  # the app's own event: the probe watches those, not the watchdog
    assert marks.seen_for == []
    box.accept(form("hook-1"))
    assert marks.seen_for == ["m1"]
    with pytest.raises(HttpError):
        box.accept(form("forged"))
    failing, failing_marks = intake(Sink(fail=True))
    with pytest.raises(RuntimeError):
        failing.accept(form("hook-1"))  # not stored: it proves nothing
    assert marks.seen_for == ["m1"] and failing_marks.seen_for == []


# ---------------------------------------------------------------- the mode switch
def conn(**kw) -> WebhookConnection:
    return WebhookConnection("m1", "https://box.example/rest/", 1, "c" * 32, **kw)


def test_polled_watched_and_events_by_follow_the_token_and_the_switch():
    assert conn().polled and not conn().watched and conn().events_by == "change polling"
    hooked = conn(outgoing_token="t" * 32)
    assert not hooked.polled and hooked.watched and hooked.events_by == "outgoing webhook"
    switched = replace(hooked, polling_since=5)
    assert switched.polled and switched.watched and switched.events_by == "change polling"
    assert "t" * 32 not in str(switched.public_view()) and switched.public_view()["polling_since"] == 5


def test_the_switch_is_logged_once_and_keeps_the_outgoing_token():
    store, logged = InMemoryWebhookStore(), []
    store.save(conn(outgoing_token="t" * 32))

    def log(message, fields):
        logged.append((message, fields))

    on = switch_events("m1", store, polling=True, reason="event_queue_unreachable", by="test", now=9, log=log)
    assert on is not None and on.polling_since == 9 and on.outgoing_token == "t" * 32
    assert switch_events("m1", store, polling=True, reason="again", by="test", log=log) is None  # no-op
    off = switch_events("m1", store, polling=False, reason="events again", by="test", log=log)
    assert off is not None and off.polling_since == 0 and off.polling_reason == ""
    assert [(f["events_from"], f["events_to"]) for _, f in logged] == [
        ("outgoing webhook", "change polling"),
        ("change polling", "outgoing webhook"),
    ]
    assert all("t" * 32 not in str(f) for _, f in logged)
    store.save(replace(store.get("m1"), outgoing_token=""))
    assert switch_events("m1", store, polling=True, reason="x", by="test", log=log) is None


def test_the_queue_finding_keeps_the_authorization_server_finding():
    diagnosed = isolation_record(AuthReach.UNREACHABLE)
    diagnosed["checked_at"] = 11
    blocked = with_queue(diagnosed, QueueReach.UNREACHABLE, by="delivery watchdog", at=99)
    assert blocked["auth_server"] == "authorization_server_unreachable_from_portal"
    assert blocked["event_queue"] == "event_queue_unreachable" and blocked["checked_at"] == 11
    assert blocked["event_queue_at"] == 99 and len(blocked["advice"]) == 2
    assert summary_line({"isolation": blocked}).endswith("event queue unreachable")
    ok = with_queue(blocked, QueueReach.OK, by="delivery watchdog", at=100)
    assert ok["summary"] == "authorization server unreachable from the portal" and len(ok["advice"]) == 1
    assert with_queue(None, QueueReach.OK, by="x", at=1)["auth_server"] == "unknown"


def test_watchdog_settings_have_defaults_and_can_be_shortened():
    assert (Settings.from_env({}).watchdog_interval_s, Settings.from_env({}).watchdog_grace_s) == (600, 300)
    short = Settings.from_env({"B24_WATCHDOG_INTERVAL_S": "0", "B24_WATCHDOG_GRACE_S": "2"})
    assert (short.watchdog_interval_s, short.watchdog_grace_s) == (0, 2)
