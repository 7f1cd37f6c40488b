"""Delivery watchdog: is the cloud event queue delivering a webhook-connected portal's outgoing webhook?

A box connected by an incoming webhook whose admin set an outgoing webhook (``--outgoing-token``)
expects its changes as events through Bitrix24's cloud queue. The delivery probe (``event.test``) is
application-only, so for such a portal nothing would notice a blocked queue: its events would just stop,
silently. The watchdog notices it without touching the customer's data:

* the intake marks when the portal's outgoing-webhook events last arrived (b24core.events.arrivals:
  no read, at most one write per portal a minute);
* every ``interval_s`` (default 10 minutes; it runs inside ChangePollFunction's round) it lists the
  objects the portal changed since its own cursor (the first pollable kind the app handles, listed by
  modification time, each request taking
  the portal's shared REST budget), and judges (``judge``) the changes older than ``grace_s``:
  if an event arrived after the newest of them, the queue delivers (``ok``); if none did, it does not
  (``event_queue_unreachable``); with no such change there is no verdict;
* ``event_queue_unreachable``: the portal's isolation record says so, its events are switched to change
  polling (an explicit, logged operation, switch_events) with the poll cursor set back to
  where the watchdog last saw delivery (the IDs it knows seeded, so the first reconciliation also finds
  deletions made meanwhile), and the admin is told once, through the incoming webhook;
* ``ok`` again on a portal it switched: back to the outgoing webhook (logged) and the admin is told.

Times: the changes are in the portal's clock, arrivals in ours. Each listing's ``time.start`` measures
the skew, so all comparisons are made in the portal's clock. An arrival is stored at most
``MARK_EVERY_S`` late, so a change that close after the stored arrival counts as delivered.

State per portal: one item beside its record (pk=PORTAL#member_id, sk=WATCHDOG), saved optimistically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from b24core.aws import metrics
from b24core.aws.logs import logger
from b24core.bitrix.i18n import language_of, texts
from b24core.bitrix.rest import RestAnswer
from b24core.capabilities.isolation import ADVICE, ADVICE_RU, LABELS, LABELS_RU, QueueReach, with_queue
from b24core.capabilities.manifest import Manifest
from b24core.capabilities.notices import log_notice
from b24core.capabilities.report import CapabilityReport, Status
from b24core.delivery.polling import PAGE, Cursor, PollSpec, PollState, PollStore, specs_for
from b24core.delivery.portal_clock import PortalClock
from b24core.delivery.watch_store import WatchState, WatchStore
from b24core.events.arrivals import MARK_EVERY_S, ArrivalReader
from b24core.portals.model import Portal
from b24core.portals.store import PortalStore
from b24core.portals.versioned import update
from b24core.portals.webhook_store import WebhookConnection, WebhookStore
from b24core.tokens.client import PortalClient
from b24core.trust.webhooks import switch_events

#: The kind of object whose changes are watched (the one change polling can take over).
#: How much earlier than a change an arrival may be stored and still prove it was delivered: the
#: intake's write throttle plus the whole seconds of both clocks.
SLACK_S = MARK_EVERY_S + 2
NOTIFY_METHOD = "im.notify.system.add"
BY = "delivery watchdog"


# ---------------------------------------------------------------- the decision
def judge(
    changes: Sequence[float], now: float, grace_s: float, arrival: float | None, slack_s: float = SLACK_S
) -> QueueReach | None:
    """The verdict on changes made at ``changes`` (portal clock) given the last outgoing-webhook event
    arrival (portal clock; ``None``: never). Only changes older than ``grace_s`` count: a younger one's
    event may still be on its way. No such change: no verdict."""
    old = [c for c in changes if c <= now - grace_s]
    if not old:
        return None
    if arrival is not None and arrival >= max(old) - slack_s:
        return QueueReach.OK
    return QueueReach.UNREACHABLE


# ---------------------------------------------------------------- one check
@dataclass
class WatchResult:
    member_id: str
    due: bool = True
    verdict: QueueReach | None = None
    judged: int = 0
    pending: int = 0  # changes younger than the grace period, judged later
    pages: int = 0
    switched_to: str = ""  # "change polling" / "outgoing webhook" when this check switched
    notified: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "due": self.due,
            "verdict": str(self.verdict) if self.verdict else None,
            "judged": self.judged,
            "pending": self.pending,
            "pages": self.pages,
            "switched_to": self.switched_to or None,
            "notified": self.notified,
        }


@dataclass(frozen=True)
class _Row:
    key: str
    id: int
    stamp: str
    at: float  # portal clock


@dataclass
class DeliveryWatchdog:
    store: WatchStore
    webhooks: WebhookStore
    portals: PortalStore
    polls: PollStore
    arrivals: ArrivalReader
    manifest: Manifest
    interval_s: int = 600
    grace_s: int = 300
    max_pages: int = 10
    clock: Callable[[], float] = time.time
    #: Called before every request with its method: takes the portal's shared REST budget (or raises).
    spend: Callable[[str], None] = lambda method: None
    log: Callable[[str, dict[str, Any]], None] | None = None

    def due(self, member_id: str) -> bool:
        state = self.store.get(member_id)
        return state is None or not state.checked_at or self.clock() - state.checked_at >= self.interval_s

    def check(self, client: PortalClient, conn: WebhookConnection, wanted: set[str]) -> WatchResult:
        member_id = conn.member_id
        result = WatchResult(member_id)
        specs = specs_for(wanted)
        state = self.store.get(member_id) or WatchState(member_id)
        now = int(self.clock())
        if not conn.watched or not specs:
            result.due = False
            return result
        if state.checked_at and now - state.checked_at < self.interval_s:
            result.due = False
            return result
        spec = specs[0]  # one kind is evidence enough that events flow (or not)
        known = set(state.known_ids)
        cursor = state.cursor
        if not cursor:  # first check: what exists now, and watch from the webhook's connection on
            ids, clock = self._all_ids(client, spec, result)
            known |= ids
            cursor = clock.format((conn.connected_at or now) + clock.skew)
        before = set(state.judged) if cursor == state.cursor else set()
        rows, clock = self._changes(client, spec, cursor, before, result)
        stored = self.arrivals.last(member_id)
        arrival = stored + clock.skew if stored else None
        verdict = judge([r.at for r in rows], clock.now, self.grace_s, arrival)
        old = [r for r in rows if r.at <= clock.now - self.grace_s]
        if verdict == QueueReach.OK:  # delivered: the app knows these objects (polling sends updates)
            known |= {r.id for r in old}
        result.judged, result.pending = len(old), len(rows) - len(old)
        new_cursor, judged = cursor, before
        if verdict is not None:
            newest = max(old, key=lambda r: r.at)
            if newest.stamp != cursor:
                new_cursor, judged = newest.stamp, set()
            judged |= {r.key for r in old if r.at == newest.at}
        result.verdict = verdict
        if verdict == QueueReach.UNREACHABLE and not conn.polling_since:
            # Polling takes over from where delivery was last seen, so nothing made meanwhile is lost.
            start = clock.format((clock.ts(cursor) or clock.now) - SLACK_S)
            self._seed_poll(member_id, spec.kind, start, known)
            if switch_events(
                member_id,
                self.webhooks,
                polling=True,
                reason=str(QueueReach.UNREACHABLE),
                by=BY,
                now=now,
                log=self.log,
            ):
                result.switched_to = "change polling"
                metrics.emit("DeliveryBlocked")  # the same alarm as a missed delivery probe
        elif verdict == QueueReach.OK and conn.polling_since:
            back = switch_events(
                member_id,
                self.webhooks,
                polling=False,
                reason="events arrive again through the outgoing webhook",
                by=BY,
                now=now,
                log=self.log,
            )
            if back:
                result.switched_to = "outgoing webhook"
        effective = verdict or _queue(state.verdict)
        since = clock.format(min(r.at for r in old)) if old else None
        result.notified = self._record(member_id, effective, now, since, client, conn)
        self.store.save(
            replace(
                state,
                cursor=new_cursor,
                judged=tuple(sorted(judged)),
                known_ids=tuple(sorted(known)),
                checked_at=now,
                verdict=str(effective),
                verdict_at=now if verdict is not None else state.verdict_at,
            )
        )
        logger.info(
            "delivery watchdog checked",
            extra={
                "action": "watchdog",
                "outcome": str(verdict) if verdict else "no_verdict",
                **result.as_dict(),
            },
        )
        return result

    # ---- listing
    def _call(self, client: PortalClient, method: str, params: dict[str, Any]) -> tuple[RestAnswer, float]:
        self.spend(method)
        ours = self.clock()
        return client.call_raw(method, params), ours

    def _all_ids(
        self, client: PortalClient, spec: PollSpec, result: WatchResult
    ) -> tuple[set[int], PortalClock]:
        """Every ID (the fast ``>ID`` + ``start=-1`` listing of settings/performance/huge-data.md)."""
        present: set[int] = set()
        last = 0
        clock: PortalClock | None = None
        while True:
            params = {
                "order": {spec.id: "ASC"},
                "filter": {f">{spec.id}": last},
                "select": [spec.id],
                "start": -1,
            }
            answer, ours = self._call(client, spec.list_method, params)
            result.pages += 1
            clock = clock or PortalClock.from_answer(answer, ours)
            ids = [i for i in map(spec.row_id_of, spec.rows(answer.result)) if i is not None]
            present.update(ids)
            if len(ids) < PAGE or max(ids) <= last:
                return present, clock
            last = max(ids)

    def _changes(
        self, client: PortalClient, spec: PollSpec, cursor: str, judged: set[str], result: WatchResult
    ) -> tuple[list[_Row], PortalClock]:
        params: dict[str, Any] = {
            "order": {spec.modified: "ASC", spec.id: "ASC"},
            "select": [spec.id, spec.modified],
            "filter": {f">={spec.modified}": cursor},
        }
        rows: list[_Row] = []
        clock: PortalClock | None = None
        start = 0
        for _ in range(max(1, self.max_pages)):  # the oldest changes first: a capped round judges those
            answer, ours = self._call(client, spec.list_method, {**params, "start": start})
            result.pages += 1
            clock = clock or PortalClock.from_answer(answer, ours)
            for key, object_id, stamp in spec.changes(answer.result):
                at = clock.ts(stamp)
                if key in judged or at is None:
                    continue
                rows.append(_Row(key, object_id, stamp, at))
            if answer.next is None or answer.next <= start:
                break
            start = answer.next
        assert clock is not None  # max_pages >= 1
        return rows, clock

    # ---- the switch
    def _seed_poll(self, member_id: str, kind: str, start: str, known: set[int]) -> None:
        """Polling starts at ``start`` (before the first undelivered change) and knows ``known``; its
        first round reconciles at once, so deletions made while events did not arrive are found too."""

        def seeded(state: PollState | None) -> PollState | None:
            state = state or PollState(member_id)
            before = state.cursors.get(kind, Cursor())
            cursor = Cursor(modified=start, known_ids=tuple(sorted(set(before.known_ids) | known)))
            return replace(state, cursors={**state.cursors, kind: cursor})

        update(lambda: self.polls.get(member_id), self.polls.save, seeded, member_id)

    # ---- the isolation record and the admin
    def _record(
        self,
        member_id: str,
        queue: QueueReach,
        now: int,
        since: str | None,
        client: PortalClient,
        conn: WebhookConnection,
    ) -> bool:
        """Keep the portal's isolation record in line with ``queue``; tell the admin once per change."""
        portal = self._update_caps(member_id, lambda caps: _with_finding(caps, queue, now))
        if portal is None:
            return False
        report = CapabilityReport.of(portal.capabilities)
        summary = str((report.isolation or {}).get("summary") or "")
        told = report.notified.get("isolation", "")
        queue_label = LABELS[QueueReach.UNREACHABLE]
        t = texts(portal.language)
        ru = language_of(portal.language) == "ru"
        if queue == QueueReach.UNREACHABLE and told != summary:
            message = t["watchdog_blocked"].format(
                label=(LABELS_RU if ru else LABELS)[QueueReach.UNREACHABLE],
                since=t["watchdog_since"].format(since=since) if since else "",
                advice=(ADVICE_RU if ru else ADVICE)[QueueReach.UNREACHABLE],
            )
        elif queue == QueueReach.OK and queue_label in told and told != summary:
            message = t["watchdog_back"]
        else:
            return False
        if not self._notify(portal, conn, client, message):
            return False
        self._update_caps(
            member_id,
            lambda caps: {**caps, "notified": {**(caps.get("notified") or {}), "isolation": summary}},
        )
        return True

    def _notify(self, portal: Portal, conn: WebhookConnection, client: PortalClient, message: str) -> bool:
        from b24core.capabilities.notices import notification_feature

        report = CapabilityReport.of(portal.capabilities)
        admin = report.admin_user_id or portal.user_id or conn.user_id or ""
        channel = notification_feature(self.manifest)
        reason = ""
        if channel is None:
            reason = f"the app declares no feature using {NOTIFY_METHOD}"
        elif report.status(channel) != Status.AVAILABLE:
            reason = f"the {channel} feature ({NOTIFY_METHOD}) is not known available"
        elif not admin:
            reason = "no administrator known"
        else:
            try:  # through the incoming webhook: no TAG (it would need the app's CLIENT_ID)
                self.spend(NOTIFY_METHOD)
                client.call(NOTIFY_METHOD, {"USER_ID": admin, "MESSAGE": message})
            except Exception as exc:  # tried again at the next check
                reason = f"{NOTIFY_METHOD} failed: {type(exc).__name__}"
        log_notice(portal.member_id, reason, by=BY)
        return not reason

    def _update_caps(
        self, member_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Portal | None:

        def with_caps(portal: Portal | None) -> Portal | None:
            if portal is None:
                return None
            caps = dict(portal.capabilities or {})
            updated = change(caps)
            return None if updated == caps else replace(portal, capabilities=updated)

        return update(lambda: self.portals.get(member_id), self.portals.save, with_caps, member_id)


def _queue(raw: str) -> QueueReach:
    return QueueReach(raw) if raw in tuple(QueueReach) else QueueReach.UNKNOWN


def _with_finding(caps: dict[str, Any], queue: QueueReach, now: int) -> dict[str, Any]:
    iso = caps.get("isolation") if isinstance(caps.get("isolation"), dict) else None
    if queue == QueueReach.UNKNOWN or (iso is not None and iso.get("event_queue") == queue):
        return caps
    return {**caps, "isolation": with_queue(iso, queue, by=BY, at=now)}
