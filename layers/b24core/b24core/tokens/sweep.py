"""The keep-alive sweep (TokenRefreshFunction): refresh only portals whose refresh token is getting old.

Refreshing on a timer gets an app blocked by the authorization server (settings/oauth/auto-renewal.md),
so the sweep touches a portal only when its last refresh is older than the keep-alive age (30 days by
default, spread over two days by a per-portal jitter) and never twice within the minimum interval (a
day). It also runs the scheduled attempts of refresh_failing portals and the daily probe of
payment_required ones.

It finds them through gsi1 (``b24core.portals.token_index``): a Query per token partition below "now",
so it reads about as many items as are due, never a Scan. It works with bounded concurrency, under a
global cap of requests per second to the authorization server, and holds a sweep lease so two sweeps
(the schedule and an operator's ``b24app tokens sweep``) never add up past the cap. It stops before the
Lambda's deadline; what it did not reach is still due in the index, so the next run resumes there.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from logging import INFO, WARNING
from typing import Any, Protocol

from b24core.aws import metrics
from b24core.aws.logs import log_event, logger
from b24core.aws.settings import TokenPolicy
from b24core.portals import token_index
from b24core.portals.model import Portal
from b24core.portals.states import TokenState
from b24core.portals.store import IndexPage
from b24core.tokens.keeper import TokenKeeper
from b24core.tokens.lease import LeaseKey, LeaseStore
from b24core.tokens.outcomes import Outcome, RefreshReason, RefreshResult

PAGE_SIZE = 100
# Start no refresh with less time left than this: a refresh must never be cut between the auth
# server's answer and the save (that would lose the only valid refresh token).
SAFETY_MS = 20_000
SWEEP_LEASE_S = 900.0


class TokenIndex(Protocol):
    def index_page(
        self, partition: str, below: str | None, limit: int = 100, start_key: dict[str, Any] | None = None
    ) -> IndexPage: ...

    def count_index(self, partition: str, below: str | None = None) -> int: ...


class AuthPace:
    """At most ``rate`` acquisitions per second across threads, evenly spaced (no bursts)."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate
        self.clock = clock
        self.sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()
        self.granted = 0

    def acquire(self) -> None:
        with self._lock:
            now = self.clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
            self.granted += 1
        wait = slot - now
        if wait > 0:
            self.sleep(wait)


@dataclass
class SweepReport:
    due_read: int = 0  # portals the index queries returned
    items_read: int = 0  # items those queries read (what they cost)
    queries: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    refreshed: int = 0
    failed: int = 0
    stopped_early: bool = False
    skipped_sweep: bool = False
    elapsed_s: float = 0.0
    auth_requests: int = 0

    @property
    def done(self) -> bool:
        return not self.stopped_early and not self.skipped_sweep

    def as_dict(self) -> dict[str, Any]:
        return {
            "due": self.due_read,
            "items_read": self.items_read,
            "queries": self.queries,
            "refreshed": self.refreshed,
            "failed": self.failed,
            "outcomes": dict(self.outcomes),
            "done": self.done,
            "stopped_early": self.stopped_early,
            "skipped": self.skipped_sweep,
            "elapsed_s": round(self.elapsed_s, 3),
            "auth_requests": self.auth_requests,
            # Kept from the first version's answer.
            "due_count": self.due_read,
        }


_FAILED = {Outcome.FAILING, Outcome.REAUTH_REQUIRED, Outcome.PAYMENT_REQUIRED}


class Sweep:
    def __init__(
        self,
        index: TokenIndex,
        keeper: TokenKeeper,
        leases: LeaseStore,
        policy: TokenPolicy,
        clock: Callable[[], float] = time.time,
        limiter: AuthPace | None = None,
    ) -> None:
        self.index = index
        self.keeper = keeper
        self.leases = leases
        self.policy = policy
        self.clock = clock
        self.limiter = limiter or AuthPace(policy.auth_rate_per_s)

    def due_count(self) -> dict[str, int]:
        now = int(self.clock())
        return {
            "retry": self.index.count_index(token_index.RETRY, token_index.upper_bound(now)),
            "keepalive": self.index.count_index(
                token_index.REFRESH, token_index.upper_bound(now - self.policy.keepalive_age_s)
            ),
        }

    def run(
        self,
        time_left_ms: Callable[[], int] | None = None,
        max_portals: int | None = None,
        progress: Callable[[SweepReport], None] | None = None,
    ) -> SweepReport:
        report = SweepReport()
        started = time.monotonic()
        key, holder = LeaseKey.sweep(), f"sweep-{uuid.uuid4().hex[:12]}"
        lease_s = SWEEP_LEASE_S if time_left_ms is None else time_left_ms() / 1000 + 30
        if not self.leases.acquire(key, holder, lease_s, self.clock()):
            report.skipped_sweep = True
            log_event(INFO, "another sweep is running", "sweep", outcome="skipped")
            return report
        lock = threading.Lock()
        budget = threading.Semaphore(self.policy.sweep_concurrency * 2)

        def out_of_time() -> bool:
            return time_left_ms is not None and time_left_ms() < SAFETY_MS

        def throttle() -> None:
            self.limiter.acquire()
            with lock:
                report.auth_requests += 1

        def work(portal: Portal, reason: RefreshReason) -> None:
            try:
                if out_of_time():
                    with lock:
                        report.stopped_early = True
                    return
                result = self._one(portal, reason, throttle)
                with lock:
                    report.outcomes[str(result.outcome)] += 1
                    report.refreshed += result.outcome == Outcome.REFRESHED
                    report.failed += result.outcome in _FAILED
                if progress is not None:
                    progress(report)
            finally:
                budget.release()

        submitted = 0
        try:
            with ThreadPoolExecutor(
                max_workers=self.policy.sweep_concurrency, thread_name_prefix="sweep"
            ) as pool:
                futures: list[Future[None]] = []
                now = int(self.clock())
                plan = (
                    (token_index.RETRY, token_index.upper_bound(now), RefreshReason.RETRY),
                    (
                        token_index.REFRESH,
                        token_index.upper_bound(now - self.policy.keepalive_age_s),
                        RefreshReason.KEEPALIVE,
                    ),
                )
                for partition, below, reason in plan:
                    start_key: dict[str, Any] | None = None
                    while not report.stopped_early:
                        limit = PAGE_SIZE
                        if max_portals is not None:
                            limit = min(limit, max_portals - submitted)
                            if limit <= 0:
                                report.stopped_early = True
                                break
                        if out_of_time():
                            report.stopped_early = True
                            break
                        page = self.index.index_page(partition, below, limit, start_key)
                        report.queries += 1
                        report.items_read += page.read
                        report.due_read += len(page.portals)
                        for portal in page.portals:
                            budget.acquire()
                            futures.append(pool.submit(work, portal, reason))
                            submitted += 1
                        if page.next_key is None:
                            break
                        start_key = page.next_key
                    if report.stopped_early:
                        break
                for f in futures:
                    f.result()
        finally:
            self.leases.release(key, holder)
        report.elapsed_s = time.monotonic() - started
        metrics.emit("PortalsDue", report.due_read)
        logger.info(
            "keep-alive sweep finished" if report.done else "keep-alive sweep stopped; the next run resumes",
            extra={"action": "sweep", "outcome": "done" if report.done else "partial", **_log_counts(report)},
        )
        return report

    def _one(self, portal: Portal, reason: RefreshReason, throttle: Callable[[], None]) -> RefreshResult:
        try:
            return self.keeper.attempt(portal, reason, throttle)
        except Exception as exc:
            log_event(WARNING, "keep-alive refresh failed", "sweep", portal.member_id, "error", error=exc)
            return RefreshResult(Outcome.FAILING, portal, type(exc).__name__)


def _log_counts(report: SweepReport) -> dict[str, Any]:
    return {
        "due": report.due_read,
        "refreshed": report.refreshed,
        "failed": report.failed,
        "items_read": report.items_read,
        "auth_requests": report.auth_requests,
    }


def census(index: TokenIndex, policy: TokenPolicy, now: int) -> dict[str, Any]:
    """Portals per token state and how many are due: COUNT Queries on gsi1, no Scan.

    ``active`` reads every healthy portal's index entry (a COUNT still reads items), so this runs
    daily (TokenRefreshFunction's census schedule) or on demand, never inside the sweep.
    """
    failing = payment = 0
    start_key: dict[str, Any] | None = None
    while True:  # the RETRY partition holds only troubled portals: page through it
        page = index.index_page(token_index.RETRY, None, 500, start_key)
        failing += sum(1 for p in page.portals if p.token_state == TokenState.REFRESH_FAILING)
        payment += sum(1 for p in page.portals if p.token_state == TokenState.PAYMENT_REQUIRED)
        if page.next_key is None:
            break
        start_key = page.next_key
    oldest = index.index_page(token_index.REFRESH, None, 1)
    return {
        "states": {
            "active": index.count_index(token_index.REFRESH),
            "refresh_failing": failing,
            "payment_required": payment,
            "reauth_required": index.count_index(token_index.REAUTH),
            "uninstalled": index.count_index(token_index.GONE),
        },
        "due": {
            "retry": index.count_index(token_index.RETRY, token_index.upper_bound(now)),
            "keepalive": index.count_index(
                token_index.REFRESH, token_index.upper_bound(now - policy.keepalive_age_s)
            ),
        },
        "oldest_refresh": (
            {"member_id": oldest.portals[0].member_id, "refreshed_at": oldest.portals[0].refreshed_at}
            if oldest.portals
            else None
        ),
    }


def emit_census(report: dict[str, Any]) -> None:
    for state, count in report["states"].items():
        metrics.emit("PortalsInTokenState", count, state=state)
    metrics.emit("PortalsDue", sum(report["due"].values()))
