"""Pull mode: the portal's offline event queue → SQS, never removing a record SQS does not have.

api-reference/events/offline-events.md: with offline bindings (``event.bind event_type=offline``,
admin only) the portal keeps one record per changed object. A pull round is

1. ``event.offline.get clear=0`` — the portal reserves up to ``limit`` records under a process_id,
   which is saved in the portal's delivery state before anything else happens;
2. each record becomes a ``QueuedEvent`` (source "offline") sent to EVENTS_QUEUE_URL in SQS batches;
3. ``event.offline.clear`` for that process_id — only the records SQS accepted (``id``);
   records SQS refused are marked with ``event.offline.error`` and retried by a later run
   (``error=1``).

Step 3 of one round travels in the same ``batch`` request as step 1 of the next, so a round costs
one request of the portal's budget (which every call here spends through the shared limiter).

Crash safety: reserved process_ids are remembered until cleared, so a run that died after SQS
accepted but before the clear re-reads them (``process_id=``) and re-sends (the worker's idempotency
absorbs the repeat: the message body is built from the record alone). A run that died between the
get and saving its process_id leaves ``run_open`` set; the next run then lists the queue for
reservations nobody knows and takes them over. One pull per portal at a time (a lease).

Bindings follow the mode: pull and lossless bind the app's feature events offline with the app's
``auth_connector`` (its own writes do not come back) and ONOFFLINEEVENT online (a hint that records
wait); back online, the offline bindings are removed first, then the queue is drained.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from logging import WARNING
from typing import Any

from b24core.aws import metrics
from b24core.aws.logs import log_event, logger
from b24core.aws.settings import DeliveryPolicy
from b24core.bitrix.values import as_epoch, is_digits
from b24core.delivery.modes import DeliveryMode
from b24core.delivery.offline_bind import error_code, is_budget, reconcile_bindings
from b24core.delivery.store import DeliveryState, DeliveryStore, mutate
from b24core.events.message import QueuedEvent
from b24core.events.queue_writer import QueueWriter
from b24core.portals.keys import PULL_LEASE_SK, portal_pk
from b24core.portals.model import Portal
from b24core.tokens.lease import LeaseKey, LeaseStore

_LIST_PAGES = 20  # orphan search: at most this many pages of event.offline.list (50 each)


class BudgetSpent(RuntimeError):
    """The portal's REST budget is spent for now; the next run continues."""


# ---------------------------------------------------------------- records → queue messages
def _epoch(value: Any) -> int:
    number = as_epoch(value)
    if number is not None:
        return int(number)
    try:
        return int(datetime.fromisoformat(str(value)).timestamp())
    except (TypeError, ValueError, OverflowError, OSError):
        return 0


def to_message(portal: Portal, row: dict[str, Any]) -> QueuedEvent:
    """One offline record as the worker's message. Built from the record alone, so pulling the same
    record again yields the same body (the worker's idempotency key)."""
    data = row.get("EVENT_DATA")
    ts = _epoch(row.get("TIMESTAMP_X"))
    return QueuedEvent(
        event=str(row.get("EVENT_NAME") or "").upper(),
        member_id=portal.member_id,
        domain=portal.domain,
        data=data if isinstance(data, dict) else {},
        ts=str(ts) if ts else "",
        event_handler_id=f"offline:{row.get('MESSAGE_ID') or row.get('ID') or ''}",
        source="offline",
        received_at=ts,
    )


@dataclass
class PullResult:
    member_id: str
    outcome: str = "done"  # done | busy | budget | deadline | failed | idle
    enqueued: int = 0
    refused: int = 0
    rounds: int = 0
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ---------------------------------------------------------------- the puller
@dataclass
class OfflinePuller:
    store: DeliveryStore
    leases: LeaseStore
    writer: QueueWriter
    policy: DeliveryPolicy
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic

    # ---- bindings

    # ---- one run for one portal
    def run(
        self, client: Any, portal: Portal, events: list[str], deadline: float | None = None
    ) -> PullResult:
        """Reconcile bindings, then pull until the queue is empty, the budget or the time is spent."""
        key = LeaseKey(portal_pk(portal.member_id), PULL_LEASE_SK)
        holder = uuid.uuid4().hex
        if not self.leases.acquire(key, holder, self.policy.pull_lease_s, self.clock()):
            return PullResult(portal.member_id, "busy", reason="another pull of this portal is running")
        try:
            state = self.store.get(portal.member_id) or DeliveryState(portal.member_id)
            try:
                state = reconcile_bindings(
                    self.store, self.policy, int(self.clock()), client, portal, state, events
                )
            except Exception as exc:
                outcome = "budget" if is_budget(exc) else "failed"
                return self._finish(portal, PullResult(portal.member_id, outcome, reason=error_code(exc)))
            if not state.has_offline_work:
                return PullResult(portal.member_id, "idle")
            nothing_reserved = not (state.pending or state.draining or state.errors_marked or state.run_open)
            if state.wants_offline and not state.offline_bound and nothing_reserved:
                # No offline bindings (the portal refused them): there is no queue to pull yet.
                return PullResult(portal.member_id, "unbound", reason=state.bind_error)
            return self._pull(client, portal, state, deadline)
        finally:
            self.leases.release(key, holder)

    def _pull(self, client: Any, portal: Portal, state: DeliveryState, deadline: float | None) -> PullResult:
        result = PullResult(portal.member_id)
        crashed = state.run_open
        state = mutate(self.store, portal.member_id, lambda s: replace(s, run_open=True))
        try:
            if crashed:
                self._adopt_orphans(client, portal)
            for process_id in list(self._state(portal).pending):
                rows = self._get(client, {"process_id": process_id})
                self._settle(client, portal, process_id, rows, result)
            if self._state(portal).errors_marked:
                # Records an earlier run could not queue: one page of them per run.
                process_id, rows = self._reserve(client, portal, error=True)
                refused_before = result.refused
                if rows:
                    self._settle(client, portal, process_id, rows, result)
                if len(rows) < self.policy.pull_batch_size and result.refused == refused_before:
                    mutate(self.store, portal.member_id, lambda s: replace(s, errors_marked=False))
            self._rounds(client, portal, deadline, result)
        except Exception as exc:
            result.outcome = "budget" if is_budget(exc) else "failed"
            result.reason = error_code(exc)
        return self._finish(portal, result)

    def _rounds(self, client: Any, portal: Portal, deadline: float | None, result: PullResult) -> None:
        """get → enqueue → (clear + next get in one batch) until the queue is empty."""
        connector = self.policy.auth_connector
        carry: dict[str, tuple[str, dict[str, Any]]] = {}
        carried: str = ""
        while True:
            if deadline is not None and self.monotonic() > deadline:
                if carry:
                    self._send_settlement(client, portal, carried, carry)
                result.outcome = "deadline"
                return
            commands = dict(carry)
            commands["get"] = (
                "event.offline.get",
                {"clear": 0, "limit": self.policy.pull_batch_size, "auth_connector": connector},
            )
            answer = client.batch(commands)
            if carry:
                self._after_settlement(portal, carried, carry, answer)
            if "get" not in answer["result"]:
                raise RuntimeError(f"event.offline.get failed: {error_code(answer['error'].get('get'))}")
            process_id, rows = _reserved(answer["result"]["get"])
            result.rounds += 1
            if not rows:
                self._drained(portal)
                return
            self._remember(portal, process_id)
            carry = self._enqueue(portal, process_id, rows, result)
            carried = process_id

    # ---- steps
    def _state(self, portal: Portal) -> DeliveryState:
        return self.store.get(portal.member_id) or DeliveryState(portal.member_id)

    def _get(self, client: Any, extra: dict[str, Any]) -> list[dict[str, Any]]:
        params = {
            "clear": 0,
            "limit": self.policy.pull_batch_size,
            "auth_connector": self.policy.auth_connector,
        }
        params.update(extra)
        return _reserved(client.call("event.offline.get", params))[1]

    def _reserve(self, client: Any, portal: Portal, error: bool = False) -> tuple[str, list[dict[str, Any]]]:
        params: dict[str, Any] = {
            "clear": 0,
            "limit": self.policy.pull_batch_size,
            "auth_connector": self.policy.auth_connector,
        }
        if error:
            params["error"] = 1
        process_id, rows = _reserved(client.call("event.offline.get", params))
        if rows:
            self._remember(portal, process_id)
        return process_id, rows

    def _remember(self, portal: Portal, process_id: str) -> None:
        if process_id:
            mutate(
                self.store,
                portal.member_id,
                lambda s: (
                    replace(s, pending=(*s.pending, process_id)) if process_id not in s.pending else None
                ),
            )

    def _enqueue(
        self, portal: Portal, process_id: str, rows: list[dict[str, Any]], result: PullResult
    ) -> dict[str, tuple[str, dict[str, Any]]]:
        """Send the rows to SQS; return the settlement commands (clear what SQS took, mark the rest)."""
        messages = {str(row.get("ID")): to_message(portal, row) for row in rows}
        if not process_id:  # nothing reserved (the portal cleared at once): queue them, nothing to settle
            result.enqueued += len(self.writer.send(messages))
            return {}
        accepted = self.writer.send(messages)
        refused = [row for row in rows if str(row.get("ID")) not in accepted]
        result.enqueued += len(accepted)
        result.refused += len(refused)
        commands: dict[str, tuple[str, dict[str, Any]]] = {}
        if accepted:
            clear: dict[str, Any] = {"process_id": process_id}
            if refused:
                clear["id"] = sorted(accepted, key=_id_order)
            commands["clear"] = ("event.offline.clear", clear)
        if refused:
            message_ids = sorted({str(row.get("MESSAGE_ID")) for row in refused if row.get("MESSAGE_ID")})
            commands["error"] = ("event.offline.error", {"process_id": process_id, "message_id": message_ids})
            log_event(
                WARNING,
                "offline records not queued",
                "pull",
                portal.member_id,
                "marked_error",
                count=len(refused),
                reason="queue_unavailable",
            )
        return commands

    def _settle(
        self, client: Any, portal: Portal, process_id: str, rows: list[dict[str, Any]], result: PullResult
    ) -> None:
        if not rows:  # the reservation is gone (cleared or expired): forget it
            self._forget(portal, process_id, errors=False)
            return
        commands = self._enqueue(portal, process_id, rows, result)
        self._send_settlement(client, portal, process_id, commands)

    def _send_settlement(
        self, client: Any, portal: Portal, process_id: str, commands: dict[str, tuple[str, dict[str, Any]]]
    ) -> None:
        answer = client.batch(commands)
        self._after_settlement(portal, process_id, commands, answer)

    def _after_settlement(
        self,
        portal: Portal,
        process_id: str,
        commands: dict[str, tuple[str, dict[str, Any]]],
        answer: Any,
    ) -> None:
        done = all(key in answer["result"] for key in commands if key in ("clear", "error"))
        if done:
            self._forget(portal, process_id, errors="error" in commands)
        # otherwise the process_id stays remembered: the next run re-reads and settles it

    def _forget(self, portal: Portal, process_id: str, errors: bool) -> None:
        mutate(
            self.store,
            portal.member_id,
            lambda s: replace(
                s,
                pending=tuple(p for p in s.pending if p != process_id),
                errors_marked=s.errors_marked or errors,
            ),
        )

    def _drained(self, portal: Portal) -> None:
        def empty(s: DeliveryState) -> DeliveryState | None:
            if s.draining and not s.wants_offline and not s.pending:
                return replace(s, draining=False)
            return None

        mutate(self.store, portal.member_id, empty)

    def _adopt_orphans(self, client: Any, portal: Portal) -> None:
        """A run died between a get and saving its process_id: find reservations nobody remembers."""
        known = set(self._state(portal).pending)
        found: list[str] = []
        start = 0
        for _ in range(_LIST_PAGES):
            answer = client.call(
                "event.offline.list",
                {
                    "filter": {"!PROCESS_ID": ""},
                    "start": start,
                    "auth_connector": self.policy.auth_connector,
                },
            )
            rows = answer if isinstance(answer, list) else []
            for row in rows:
                pid = str(row.get("PROCESS_ID") or "") if isinstance(row, dict) else ""
                if pid and pid not in known and pid not in found:
                    found.append(pid)
            if len(rows) < 50:
                break
            start += 50
        for pid in found:
            self._remember(portal, pid)
        if found:
            log_event(
                WARNING,
                "orphaned reservations taken over",
                "pull",
                portal.member_id,
                "recovered",
                count=len(found),
            )

    def _finish(self, portal: Portal, result: PullResult) -> PullResult:
        now = int(self.clock())

        def closed(s: DeliveryState) -> DeliveryState:
            return replace(
                s,
                run_open=False,
                last_pull_at=now,
                last_pull_count=result.enqueued,
                pulled_total=s.pulled_total + result.enqueued,
                pull_error="" if result.outcome in ("done", "deadline", "idle") else result.reason,
            )

        mutate(self.store, portal.member_id, closed)
        if result.enqueued:
            metrics.emit("OfflineEventsPulled", result.enqueued)
        if result.refused:
            metrics.emit("OfflineEventsRefused", result.refused)
        log = logger.warning if result.outcome == "failed" else logger.info
        log(
            "offline queue pulled",
            extra={
                "action": "pull",
                "outcome": result.outcome,
                "member_id": portal.member_id,
                "enqueued": result.enqueued,
                "refused": result.refused,
                "rounds": result.rounds,
                "reason": result.reason or None,
            },
        )
        return result


def _reserved(answer: Any) -> tuple[str, list[dict[str, Any]]]:
    if not isinstance(answer, dict):
        return "", []
    rows = [r for r in (answer.get("events") or []) if isinstance(r, dict)]
    return str(answer.get("process_id") or ""), rows


def _id_order(value: str) -> tuple[int, str]:
    return (int(value), value) if is_digits(value) else (0, value)


def mode_label(state: DeliveryState) -> str:
    if state.mode == DeliveryMode.PULL:
        return "pull (the event queue does not reach the app from this portal)"
    if state.mode == DeliveryMode.LOSSLESS:
        return "lossless (online events and the offline queue)"
    return "online"
