"""The worker: SQS records → typed events → registered handlers, spending each portal's REST budget well.

Within a batch, events are grouped per portal and coalesced per object: for handlers that declared
``fetch=``, only the latest event of an object is dispatched and its object is read once, in `batch`
calls of up to 50 reads. Reads are paced by the shared rate limiter; when a portal's budget is spent
for longer than the worker may wait, its events go back to the queue with a delay (a new message, so
they never count towards the DLQ). Powertools runs the records with partial batch responses; the batch's
guard ledger (worker/guard_ledger.py) runs a handler not declared idempotent once per event: claimed for
the batch at once, completed per event together with its storage writes. The other handlers' writes go
out per portal at the batch's end (worker/app_writes.py); portals are prepared one thread per portal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from logging import INFO, WARNING
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from b24core.aws import metrics
from b24core.aws.logs import log_event
from b24core.bitrix.errors import OperationTimeLimit, QueryLimitExceeded
from b24core.bitrix.rest import BATCH_LIMIT
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.tokens.outcomes import PortalUnavailable
from b24core.worker import retry
from b24core.worker.app_writes import BatchWrites
from b24core.worker.guard_ledger import TRANSACT_LIMIT, GuardBatch, Ledger, open_batch
from b24core.worker.handlers import Context, Registry
from b24core.worker.limited_client import BudgetBusy, LimitedClient
from b24core.worker.limiter import RateLimiter
from b24core.worker.outcomes import log_failed, report
from b24core.worker.packing import ReadPacking, held_enough
from b24core.worker.plan import Plan, mark_reads, mark_seen, parse_batch, skip_covered
from b24core.worker.read_claims import ReadClaims
from b24core.worker.read_marks import ReadMarks
from b24core.worker.reads import read_chunk
from b24core.worker.seen_marks import SeenMarks

SLOW_PORTAL_DELAY_S = 30  # a portal over its share of one invocation: its other events come back then
#: Portals prepared at once: one portal's REST wait overlaps another's bookkeeping and reads.
PORTAL_THREADS = 4


@dataclass(eq=False)  # a service, compared by identity
class Worker(ReadPacking):
    registry: Registry
    load_portal: Callable[[str], Portal | None]
    make_client: Callable[[Portal], Any]
    limiter: RateLimiter
    requeue: Callable[[list[str], int], set[int] | None]
    #: The once-per-event guard of handlers not declared idempotent (worker/guard_ledger.py); None: unguarded.
    guard: Ledger | None = None
    max_wait_s: float = 5.0
    wait: Callable[[float], None] = time.sleep
    backoff: Callable[[str, int], None] | None = None
    retry_base_s: float = 10.0
    marks: ReadMarks | None = None
    connector: str = ""
    portal_budget_s: float = 8.0
    #: What arrived per object (the change audit's evidence), and the listable kind of an event.
    seen: SeenMarks | None = None
    kind_of: Callable[[str], str | None] = lambda event: None
    #: Per-portal last received/processed times for ``portals show`` (worker/health.py).
    health: Any = None
    #: A failing portal's events: delayed requeues for hours before the DLQ (worker/retry.py).
    retry_policy: retry.RetryPolicy = field(default_factory=retry.RetryPolicy)
    #: Objects being read by another worker right now are not read twice (worker/read_claims.py).
    claims: ReadClaims | None = None

    def __post_init__(self) -> None:
        self._spent: dict[str, float] = {}
        self._read_deadline = 0.0
        self._guards = GuardBatch()
        self._plan = Plan()
        self._clients: dict[str, LimitedClient] = {}
        self._writes = BatchWrites(self.registry.storage_factory)
        self._dispatched: dict[str, list[str]] = {}  # member_id -> messageIds whose handlers ran

    # ---- the Lambda entry
    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        # Reads of the whole batch share one wait for budget; what does not fit goes back delayed.
        self._read_deadline = time.monotonic() + self.max_wait_s
        self._spent = {}
        if self.claims is not None:
            self.claims.renew_owner()
        self._writes = BatchWrites(self.registry.storage_factory)
        self._dispatched = {}
        self._plan = self.prefetch(event.get("Records") or [])
        self._guards = open_batch(self.guard, self._plan, self.registry, event.get("Records") or [], context)
        # An all-failed batch is still answered with its failures (not an error), so each record gets its
        # own backoff instead of the whole batch waiting out the queue's visibility timeout.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        response = process_partial_response(
            event=event, record_handler=self.handle_record, processor=processor, context=context
        )
        failures: list[Any] = list(response.get("batchItemFailures") or [])
        failures += self._flush_writes({f["itemIdentifier"] for f in failures})
        self._guards.release()  # claims of events that did not complete: their redelivery runs at once
        response["batchItemFailures"] = failures
        marked = mark_reads(self.marks, self._plan, failures)
        if self.claims is not None:
            self.claims.release_unmarked(marked)
        retry.visibility_backoff(self.backoff, event.get("Records") or [], failures, self.retry_base_s)
        report(self._plan, event.get("Records") or [], failures, self.registry, self.health)
        return dict(response)

    # ---- step 1: parse, coalesce, read objects in batch, decide
    def prefetch(self, records: list[dict[str, Any]]) -> Plan:
        plan, latest, by_portal = parse_batch(records, self.registry.fetch_method)
        # The seen marks go out while the portals are read: bookkeeping overlaps the REST wait.
        seen = threading.Thread(target=mark_seen, args=(self.seen, self.kind_of, list(plan.events.values())))
        seen.start()
        portals = list(by_portal.items())
        if len(portals) > 1:  # one thread per portal (its budget is never spent from two threads)
            with ThreadPoolExecutor(max_workers=min(PORTAL_THREADS, len(portals))) as pool:
                list(pool.map(lambda p: self._prefetch_one(plan, p[0], p[1], latest), portals))
        elif portals:
            self._prefetch_one(plan, portals[0][0], portals[0][1], latest)
        seen.join()
        return plan

    def _prefetch_one(
        self, plan: Plan, member_id: str, mids: list[str], latest: dict[tuple[str, str, str], str]
    ) -> None:
        pending = [m for m in mids if m not in plan.skip]
        started = time.monotonic()
        try:
            self._prefetch_portal(plan, member_id, pending, latest)
        except Exception as exc:  # whatever one portal answered, only its own events fail
            undecided = [m for m in pending if m not in plan.skip and m not in plan.failed]
            if not self._retry_later(plan, member_id, undecided, exc):
                plan.failed.update(undecided)
                log_event(
                    WARNING,
                    "events of one portal could not be prepared",
                    "dispatch",
                    member_id,
                    "retry",
                    error=exc,
                )
        finally:
            self._spend_time(member_id, started)

    def _flush_writes(self, failed: set[str]) -> list[dict[str, str]]:
        """The batch's app writes, per portal (app_writes.py); a portal whose writes did not go out
        has every record whose handlers ran answered failed, so SQS brings them back."""
        more: list[dict[str, str]] = []
        for member_id, exc in self._writes.flush_all().items():
            mids = [m for m in self._dispatched.get(member_id, []) if m not in failed]
            more += [{"itemIdentifier": mid} for mid in mids]
            log_event(
                WARNING,
                "app writes failed; events will be retried",
                "dispatch",
                member_id,
                "retry",
                error=exc,
            )
        return more

    def _spend_time(self, member_id: str, started: float) -> None:
        self._spent[member_id] = self._spent.get(member_id, 0.0) + (time.monotonic() - started)

    def _over_budget(self, member_id: str) -> bool:
        return self._spent.get(member_id, 0.0) > self.portal_budget_s

    def _prefetch_portal(
        self, plan: Plan, member_id: str, mids: list[str], latest: dict[tuple[str, str, str], str]
    ) -> None:
        portal = self.load_portal(member_id)
        if portal is not None and portal.newer_release:
            # Written by a newer release (a canary, a rollback): its events wait for a worker that
            # knows it, and end in the DLQ otherwise - never dropped as "not active".
            plan.failed.update(mids)
            plan.fail_reason.update(dict.fromkeys(mids, "newer_release"))
            log_event(WARNING, "portal written by a newer release", "dispatch", member_id, "retry")
            return
        if portal is None or portal.state != PortalState.ACTIVE:
            for mid in mids:
                plan.skip[mid] = "portal_not_active"
            return
        plan.portals[member_id] = portal
        wanted = {mid: (m, oid) for (mem, m, oid), mid in latest.items() if mem == member_id and mid in mids}
        # A delete that is the latest event of an object needs no read.
        reads = {mid: mo for mid, mo in wanted.items() if not plan.events[mid].name.endswith("DELETE")}
        skip_covered(self.marks, plan, member_id, reads)
        if not reads:
            return
        # Events without a declared read may call REST themselves: they wait for budget like reads do.
        unread_others = [mid for mid in mids if mid not in wanted]
        client = self._client(portal)
        queue = list(reads.items())
        marks = plan.reads.setdefault(member_id, {})
        started, n = time.monotonic(), 0
        while queue:
            # The portal's own time: waiting for its budget (every read at a slow limit) is not slowness.
            if n and time.monotonic() - started - client.waited_s > self.portal_budget_s:
                rest = [mid for mid, _ in queue]
                self._defer(plan, rest + unread_others, SLOW_PORTAL_DELAY_S, why="portal_slow")
                return
            if not n and len(queue) < BATCH_LIMIT and not held_enough(plan, queue):
                # A few reads: at once and unclaimed while the budget has room (steady traffic: a claim
                # costs two write units, a rare read bought twice a request the budget can spare); with
                # the budget busy (a backlog: the request would wait anyway) they wait for company.
                chunk, queue = queue, []
                stopped = read_chunk(plan, client, chunk, marks, 0.0)
                if isinstance(stopped, BudgetBusy) and self._holds_pay(member_id):
                    self._hold(plan, member_id, chunk)
                    break
                if isinstance(stopped, BudgetBusy):  # a hold would cost more than the request it saves
                    stopped = read_chunk(plan, client, chunk, marks, self._read_deadline - time.monotonic())
            else:
                chunk, queue = self._claim(plan, member_id, queue)
                if not chunk or (n and self._hold_for_packing(plan, member_id, chunk)):
                    self._release(member_id, chunk)
                    break
                stopped = read_chunk(plan, client, chunk, marks, self._read_deadline - time.monotonic())
            if stopped is not None:
                self._release(member_id, chunk)  # the reads did not happen: others may buy them
                rest = [mid for mid, _ in chunk + queue]
                requests = -(-len(rest) // BATCH_LIMIT)
                self._stop_reads(plan, member_id, rest + unread_others, stopped, requests)
                return
            n += 1

    def _stop_reads(self, plan: Plan, member_id: str, mids: list[str], exc: Exception, requests: int) -> None:
        if isinstance(exc, (QueryLimitExceeded, OperationTimeLimit)):
            self._defer(plan, mids, self._defer_delay(member_id, exc, requests))
        elif isinstance(exc, PortalUnavailable):
            for mid in mids:
                plan.skip[mid] = "portal_unavailable"
            log_event(
                WARNING,
                "portal unavailable; events dropped",
                "dispatch",
                member_id,
                "dropped",
                reason=str(exc),
            )
        elif not self._retry_later(plan, member_id, mids, exc):
            plan.failed.update(mids)  # SQS retries them; after maxReceiveCount they reach the DLQ
            raise_logged(member_id)

    def _retry_later(self, plan: Plan, member_id: str, mids: list[str], exc: BaseException) -> bool:
        """The portal is failing: its events come back later and later, for hours (worker/retry.py).
        False: another kind of failure, or the window is spent - the caller takes the DLQ path."""
        if not mids or not retry.portal_failing(exc):
            return False
        sent = retry.send_later(self.requeue, self.retry_policy, {mid: plan.messages[mid] for mid in mids})
        if sent is None:
            return False
        plan.failed.update(mid for mid in mids if mid not in sent)  # not sent: the queue's backoff
        plan.skip.update({mid: "retrying" for mid in sent})
        metrics.emit("EventsRetried", len(sent), reason=type(exc).__name__)
        log_event(
            WARNING, "portal failing; its events come back later", "dispatch", member_id, "retry", error=exc
        )
        return True

    def _client(self, portal: Portal) -> LimitedClient:
        client = LimitedClient(
            self.make_client(portal),
            self.limiter,
            portal.member_id,
            self.wait,
            self.max_wait_s,
            connector=self.connector,
        )
        self._clients[portal.member_id] = client
        return client

    def _defer_delay(self, member_id: str, exc: Exception, requests: int = 1) -> int:
        """Until the portal's budget has room for the deferred reads (so they do not come back hot)."""
        if isinstance(exc, OperationTimeLimit) and exc.reset_at:
            return int(min(retry.MAX_DELAY_S, max(1.0, exc.reset_at - time.time())))
        wait = self.limiter.wait_for(member_id, cost=float(max(1, requests)))
        return int(min(retry.MAX_DELAY_S, max(1.0, wait + 1.0)))

    def _defer(
        self, plan: Plan, mids: list[str], delay: int, hold: bool = False, why: str = "deferred"
    ) -> None:
        now = int(time.time())
        extra = 1 if hold else 0
        bodies = [
            replace(plan.messages[mid], received_at=now, held=plan.messages[mid].held + extra).to_json()
            for mid in mids
        ]
        failed: set[int] = set()
        for start in range(0, len(bodies), retry.REQUEUE_BATCH):
            try:
                lost = self.requeue(bodies[start : start + retry.REQUEUE_BATCH], delay) or set()
                failed.update(start + i for i in lost)
            except Exception:
                failed.update(range(start, min(len(bodies), start + retry.REQUEUE_BATCH)))
        for i, mid in enumerate(mids):
            if i in failed:
                plan.failed.add(mid)  # not requeued: SQS brings the original back (visibility backoff)
            else:
                plan.skip[mid] = "held" if hold else why

    # ---- step 2: per record (Powertools), dispatch what was planned
    def handle_record(self, record: SQSRecord) -> None:
        mid = record.message_id
        plan = self._plan
        if mid in plan.failed:
            raise RuntimeError("event could not be prepared; it will be retried")
        reason = plan.skip.get(mid)
        ev = plan.events.get(mid)
        if reason or ev is None:
            if ev is not None:
                log_event(INFO, "event not dispatched", "dispatch", ev.member_id, reason, event=ev.name)
            return
        if not self.registry.handlers_for(ev.name):
            log_event(INFO, "no handler", "dispatch", ev.member_id, "ignored", event=ev.name)
            return
        # Idempotent handlers run as they are; the others once per event, behind the batch's guard ledger
        # (claimed in step 1): a completed event's redelivery runs only the idempotent ones, if any.
        kinds = {reg.idempotent for reg in self.registry.handlers_for(ev.name)}
        if False in kinds and not self._guards.should_run(mid, ev.member_id, ev.name):  # or raises
            kinds.discard(False)
            if not kinds:
                return
        # A portal that has had its share of the invocation sends back the events it would still spend
        # REST on; an event whose object this batch read is handled (sent back, it would be read again:
        # at a slow limit, a read that waited for its budget would be bought twice).
        if ev.object is None and self._over_budget(ev.member_id):
            self._defer(plan, [mid], SLOW_PORTAL_DELAY_S, why="portal_slow")
            if mid not in plan.failed:
                return
            raise RuntimeError("event could not be sent back; it will be retried")
        started = time.monotonic()
        try:
            for idempotent in sorted(kinds, reverse=True):  # the idempotent ones first
                self._run_handlers(mid, idempotent)
        except Exception as exc:  # a handler's REST call found the portal failing: back later, for hours
            if not self._retry_later(plan, ev.member_id, [mid], exc):
                log_failed(ev.member_id, ev.name, exc)  # SQS retries it; the line says portal, event, error
                raise
        finally:
            self._spend_time(ev.member_id, started)

    def _run_handlers(self, mid: str, idempotent: bool) -> None:
        ev = self._plan.events[mid]
        portal = self._plan.portals[ev.member_id]
        client = self._clients.get(ev.member_id) or self._client(portal)
        self._dispatched.setdefault(ev.member_id, []).append(mid)
        guarded, writes = not idempotent and self.guard is not None, self._writes
        own = writes.event_storage(ev.member_id) if guarded and writes.factory else None
        storage = (lambda _m: own) if own is not None else writes.storage if writes.factory else None
        ctx = Context(portal=portal, client=client, storage_factory=storage)
        ran = self.registry.dispatch(ev, ctx, idempotent=idempotent)
        if guarded:  # its writes and its guard's "completed" in one transaction, or neither
            writes.commit(ev.member_id, own, partial(self._guards.complete, mid), TRANSACT_LIMIT)
        log_event(INFO, "event handled", "dispatch", ev.member_id, "handled", event=ev.name, handlers=ran)


def raise_logged(member_id: str) -> None:
    log_event(WARNING, "object reads failed; events will be retried", "dispatch", member_id, "retry")
