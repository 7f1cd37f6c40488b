"""The change audit: every change of a portal's listable objects reaches the handlers, event or not.

Bitrix24 never retries an event, and nothing tells the app one was lost. So, per kind of object the
app's features work on (the manifest's ``objects``), the audit lists what changed since its cursor and
compares each change with what reached the worker (worker/seen_marks.py):

* changes younger than the grace period are left for the next audit (their event may be on its way);
* a change with no arrival since it was made is *missed*: it is sent to the worker at once, as the
  add or update event it stands for (source ``audit``), and counted (``EventsMissed``);
* on a polled route (no events expected) the same listing is the delivery: nothing waits for a grace
  period and nothing counts as missed (source ``poll``).

Listing is keyset-paged by modification time: each page starts at the last row's time (``>=``), so a
row changed meanwhile moves past the cursor instead of shifting a page. Each run starts ``overlap_s``
before the cursor, so a change committed late (its time earlier than rows already listed) is still
found; rows judged inside the overlap are remembered (``boundary``) and not judged twice.

Deletions leave no modification time: a reconciliation lists every ID, 50 ID-wide windows per
``batch`` request, one ID shard (delivery/known_ids.py) at a time, and sends a delete event for each
known ID that is gone and whose delete never arrived. A run stops at its request budget or deadline and
the next continues from the shard it reached, so portals of any size finish across runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from b24core.bitrix.errors import LimitError
from b24core.capabilities.objects import PAGE, ObjectSpec
from b24core.delivery.audit_cursor import AuditResult, Change, KindResult, advance, start_of
from b24core.delivery.audit_store import Feed
from b24core.delivery.known_ids import SHARD, KnownIds, shard_of
from b24core.delivery.portal_clock import PortalClock
from b24core.events.message import QueuedEvent
from b24core.worker.seen_marks import Seen

#: Whole seconds on both sides: an arrival stamped this much before a change still covers it.
SLACK_S = 1.0
#: ID windows per reconciliation request (a batch of 50 commands, each one page of 50 IDs).
WINDOWS = 50


class Marks(Protocol):
    def seen(self, member_id: str, kind: str, ids: Iterable[int]) -> dict[int, Seen]: ...


Sink = Callable[[dict[str, QueuedEvent]], set[str]]


@dataclass
class _Listing:
    rows: list[Change] = field(default_factory=list)
    clock: PortalClock | None = None
    complete: bool = True


@dataclass(eq=False)  # a service, compared by identity
class ChangeAudit:
    marks: Marks
    known: KnownIds
    sink: Sink
    overlap_s: int = 120
    max_pages: int = 10  # pages of changes per kind per run
    reconcile_every_s: int = 3600
    reconcile_requests: int = 20  # reconciliation requests per kind per run
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    #: Called before every request with its method: takes the portal's shared REST budget (or raises).
    spend: Callable[[str], None] = lambda method: None

    def run(
        self,
        client: Any,
        member_id: str,
        domain: str,
        feeds: dict[str, Feed],
        specs: list[ObjectSpec],
        wanted: set[str],
        *,
        grace_s: float,
        polling: bool,
        since: float,
        deadline: float | None = None,
    ) -> tuple[dict[str, Feed], AuditResult]:
        """Audit every kind once; returns the new feeds (to save) and what was found."""
        result = AuditResult(member_id)
        out = dict(feeds)
        ctx = _Run(self, client, member_id, domain, wanted, grace_s, polling, deadline)
        for spec in specs:
            kind = KindResult(spec.kind)
            result.kinds.append(kind)
            feed = out.get(spec.kind, Feed())
            try:
                feed = ctx.changes(spec, feed, kind, since)
                if spec.delete in wanted and ctx.reconcile_due(feed):
                    before = kind.requests
                    feed = ctx.reconcile(spec, feed, kind)
                    kind.reconcile_requests = kind.requests - before
            except LimitError:  # the portal's budget is spent: what was done is kept, the rest waits
                kind.incomplete = kind.budget_spent = True
                out[spec.kind] = ctx.progress.get(spec.kind, feed)
                break
            out[spec.kind] = feed
        return out, result


@dataclass
class _Run:
    audit: ChangeAudit
    client: Any
    member_id: str
    domain: str
    wanted: set[str]
    grace_s: float
    polling: bool
    deadline: float | None
    #: Where a reconciliation stood before a request that found the budget spent.
    progress: dict[str, Feed] = field(default_factory=dict)

    def _late(self) -> bool:
        return self.deadline is not None and self.audit.monotonic() > self.deadline

    def _call(self, method: str, params: dict[str, Any], kind: KindResult) -> tuple[Any, float]:
        self.audit.spend(method)
        ours = self.audit.clock()
        kind.requests += 1
        return self.client.call_raw(method, params), ours

    def _message(self, event: str, spec: ObjectSpec, object_id: int, at: float) -> QueuedEvent:
        return QueuedEvent(
            event=event,
            member_id=self.member_id,
            domain=self.domain,
            data=spec.event_data(object_id),
            ts=str(int(at)),
            source="poll" if self.polling else "audit",
            received_at=int(self.audit.clock()),
        )

    # ---- changes by modification time
    def _list(
        self, spec: ObjectSpec, start: tuple[str, str], boundary: set[str], kind: KindResult
    ) -> _Listing:
        listing = _Listing()
        (op, lower), offset, useful = start, 0, 0
        seen = set(boundary)
        # Pages of rows judged before (the overlap) are listed again but not counted against the cap:
        # at most as many as the boundary holds, so a crowded second cannot pin the cursor.
        for _ in range(self.audit.max_pages + len(boundary) // PAGE + 2):
            if useful >= self.audit.max_pages or self._late():
                listing.complete = False
                break
            params = {
                "order": {spec.modified: "ASC", spec.id: "ASC"},
                "select": spec.select(),
                "filter": {f"{op}{spec.modified}": lower},
                "start": offset,
            }
            answer, ours = self._call(spec.list_method, params, kind)
            kind.pages += 1
            clock = listing.clock = listing.clock or PortalClock.from_answer(answer, ours)
            page = spec.rows(answer.result)
            fresh = 0
            for row in page:
                object_id, stamp = spec.row_id_of(row), spec.row_modified_of(row)
                at = clock.ts(stamp) if stamp else None
                key = f"{object_id}@{stamp}"
                if object_id is None or at is None or key in seen:
                    continue
                seen.add(key)
                created = spec.row_created_of(row)
                listing.rows.append(Change(key, object_id, stamp, at, clock.ts(created) if created else None))
                fresh += 1
            useful += fresh > 0
            if len(page) < PAGE:
                break
            last = spec.row_modified_of(page[-1])
            if (last == lower and op == ">=") or not last:  # a whole page in one second: page through it
                offset += PAGE
            else:
                op, lower, offset = ">=", last, 0
        else:
            listing.complete = False
        return listing

    def changes(self, spec: ObjectSpec, feed: Feed, kind: KindResult, since: float) -> Feed:
        start = start_of(feed, self.audit.overlap_s, since)
        start_stamp = start[1]
        listing = self._list(spec, start, set(feed.boundary), kind)
        if listing.clock is None:
            kind.incomplete = True
            return feed
        now = listing.clock.now
        # A change is judged once its second is over on the portal (another change in the same second
        # would carry the same time), and its grace period with it.
        old = [c for c in listing.rows if c.at <= now - max(self.grace_s, 1.0)]
        kind.young = len(listing.rows) - len(old)
        kind.incomplete = not listing.complete
        seen = self.audit.marks.seen(self.member_id, spec.kind, {c.id for c in old}) if old else {}
        window_start = (listing.clock.ts(start_stamp) or now) - SLACK_S
        known = self._known(spec, {c.id for c in old})
        messages: dict[str, QueuedEvent] = {}
        for change in old:
            mark = seen.get(change.id, Seen())
            if mark.any_at >= change.at - SLACK_S:
                kind.delivered += 1
                kind.by_event += mark.event_at >= change.at - SLACK_S
                continue
            # An add when the object is new to the app: no event of it, not known, created meanwhile.
            created = change.created_at
            new = (
                not mark.any_at and change.id not in known and created is not None and created >= window_start
            )
            event = spec.add if new and spec.add in self.wanted else spec.update
            if event in self.wanted:
                messages[change.key] = self._message(event, spec, change.id, change.at)
        accepted = self.audit.sink(messages) if messages else set()
        handed: list[Change] = []
        for change in old:  # in modification order: stop at the first one SQS did not take
            if change.key in messages and change.key not in accepted:
                kind.incomplete = True
                break
            handed.append(change)
            if change.key in messages:
                if self.polling:
                    kind.polled += 1
                else:
                    kind.missed += 1
                    kind.first_missed_at = kind.first_missed_at or change.at
        kind.judged = len(handed)
        if handed:
            self.audit.known.add(self.member_id, spec.kind, {c.id for c in handed})
        settled = now if listing.complete and not kind.incomplete else 0.0
        return advance(feed, handed, listing.clock, self.audit.overlap_s, start_stamp, settled)

    def _known(self, spec: ObjectSpec, ids: set[int]) -> set[int]:
        shards = {shard_of(i) for i in ids}
        out: set[int] = set()
        for shard in sorted(shards):
            out |= self.audit.known.shard(self.member_id, spec.kind, shard) & ids
        return out

    # ---- deletions by reconciliation
    def reconcile_due(self, feed: Feed) -> bool:
        now = int(self.audit.clock())
        return feed.reconcile_from >= 0 or now - feed.reconciled_at >= self.audit.reconcile_every_s

    def reconcile(self, spec: ObjectSpec, feed: Feed, kind: KindResult) -> Feed:
        if feed.reconcile_from < 0:
            feed = replace(feed, reconcile_from=0, reconcile_started=int(self.audit.clock()))
        budget = self.audit.reconcile_requests
        shards = self.audit.known.shards(self.member_id, spec.kind)
        while budget > 0 and not self._late():
            self.progress[spec.kind] = feed
            low = feed.reconcile_from
            shard = shard_of(low)
            known = self.audit.known.shard(self.member_id, spec.kind, shard) if shard in shards else set()
            if not known:  # where is the next object? (one request: the first page above low)
                answer, _ = self._call(spec.list_method, spec.ids_after(low - 1), kind)
                budget -= 1
                ids = [i for i in map(spec.row_id_of, spec.rows(answer.result)) if i is not None]
                later = [s for s in shards if s > shard]
                if not ids:  # nothing at or above low: every known ID up there is gone
                    for s in later:
                        gone = self.audit.known.shard(self.member_id, spec.kind, s)
                        if not self._deleted(spec, s, gone, set(), kind):
                            return replace(feed, reconcile_from=s * SHARD)
                    kind.reconciled = True
                    return replace(feed, reconcile_from=-1, reconciled_at=feed.reconcile_started)
                target = min([shard_of(min(ids)), *later])
                if target > shard:  # skip the empty shards between
                    feed = replace(feed, reconcile_from=target * SHARD)
                    continue
            needed = -(-(SHARD - low % SHARD) // (PAGE * WINDOWS))
            if needed > budget:
                break
            present = self._present(spec, low, (shard + 1) * SHARD, kind)
            budget -= needed
            if present is None:  # a window did not answer: the shard is listed again next run
                kind.incomplete = True
                return feed
            if not self._deleted(spec, shard, known, present, kind):
                return feed
            feed = replace(feed, reconcile_from=(shard + 1) * SHARD)
        kind.incomplete = True
        return feed

    def _present(self, spec: ObjectSpec, low: int, high: int, kind: KindResult) -> set[int] | None:
        """Every ID in [low, high), ``WINDOWS`` windows of ``PAGE`` IDs per batch request."""
        present: set[int] = set()
        windows = list(range(low, high, PAGE))
        for start in range(0, len(windows), WINDOWS):
            chunk = windows[start : start + WINDOWS]
            commands = {f"w{w}": (spec.list_method, spec.ids_in(w, min(w + PAGE, high))) for w in chunk}
            self.audit.spend("batch")
            kind.requests += 1
            answer = self.client.batch(commands)
            if any(key not in answer.result for key in commands):
                return None
            for key in commands:
                present.update(i for i in map(spec.row_id_of, spec.rows(answer.result[key])) if i is not None)
        return present

    def _deleted(
        self, spec: ObjectSpec, shard: int, known: set[int], present: set[int], kind: KindResult
    ) -> bool:
        """Send a delete for each known ID gone whose delete never arrived; keep the shard in step.
        False when SQS did not take them all (the shard is listed again)."""
        gone = sorted(known - present)
        seen = self.audit.marks.seen(self.member_id, spec.kind, gone) if gone else {}
        unsent = [i for i in gone if not seen.get(i, Seen()).gone_at]
        messages = {}
        if spec.delete in self.wanted:
            now = self.audit.clock()
            messages = {f"del{i}": self._message(spec.delete, spec, i, now) for i in unsent}
        accepted = self.audit.sink(messages) if messages else set()
        kept = {i for i in unsent if f"del{i}" in messages and f"del{i}" not in accepted}
        sent = len(messages) - len(kept)
        if self.polling:
            kind.deletes_polled += sent
        else:
            kind.deletes_missed += sent
        if present | kept != known:
            self.audit.known.replace(self.member_id, spec.kind, shard, present | kept)
        return not kept
