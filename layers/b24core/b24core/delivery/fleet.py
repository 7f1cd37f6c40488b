"""A scheduled round over the fleet (probe, pull, change audit): portals in parallel, sized to the period.

One portal at a time, a round over ~600 boxes outgrows its minute and falls behind without a word. Here
a round runs its portals on a bounded pool of threads, one thread per portal (a portal appears once per
round, so its own REST budget and limiter see no second caller from this round), and takes its work in
pages as long as its time lasts, so it sizes itself to the fleet: a page is as large as the portals that
fit in the time left at the per-portal time measured so far (this run's, else the last run's of this
process). When the time runs out with portals still due, it says so (``RoundBehind`` with the count, and
a WARNING naming the capacity and the concurrency to raise); every run reports ``RoundUtilisation``,
the share of its period it took. The portals it did not reach stay due, earliest first, so the next run
starts with them. Whatever one portal's work raises is counted (``PortalRoundsFailed``) and logged, and
the round goes on for the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from logging import INFO, WARNING
from typing import Any, TypeVar

from b24core.aws import metrics
from b24core.aws.logs import log_event

T = TypeVar("T")
#: ``next_page(size, tried)``: up to ``size`` due portals this run has not tried yet.
Pages = Callable[[int, set[str]], list[str]]

MIN_PAGE = 50
MAX_PAGE = 1000
LEFT_PAGES = 10  # pages counted when a round reports the portals it left
#: Per-portal seconds measured by the last run of each round in this process (a warm Lambda's memory).
_measured_cache: dict[str, float] = {}


@dataclass
class RoundReport:
    name: str
    done: int = 0
    left: int = 0
    elapsed_s: float = 0.0
    per_portal_s: float = 0.0
    #: Portals this round can take in one period at the measured per-portal time.
    capacity: int = 0
    period_s: float = 60.0

    @property
    def behind(self) -> bool:
        return self.left > 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "left": self.left,
            "elapsed_s": round(self.elapsed_s, 3),
            "per_portal_s": round(self.per_portal_s, 4),
            "capacity": self.capacity,
        }


def due_pages(due: Callable[[str, int, int], list[str]], now: int, *partitions: str) -> Pages:
    """Pages of the portals due by ``now`` in the gsi1 ``partitions`` (``due(partition, now, limit)``,
    earliest first), without those this run has tried: a tried portal may still be due (it failed, or
    its next time was not saved yet), so each query asks for as many more as were tried."""

    def page(size: int, tried: set[str]) -> list[str]:
        found: list[str] = []
        for partition in partitions:
            found += [m for m in due(partition, now, size + len(tried)) if m not in tried]
        return found[:size]

    return page


def run_round(
    name: str,
    next_page: Pages,
    work: Callable[[str], T],
    on_result: Callable[[str, T | None], None],
    *,
    concurrency: int,
    deadline: float | None,
    period_s: float,
    failed: str = "scheduled round failed for a portal",
    on_error: Callable[[str], T | None] | None = None,
) -> RoundReport:
    """Run ``work`` for every portal ``next_page(size, tried)`` gives (due portals not yet tried in this
    run; an empty page ends the round), ``concurrency`` at a time, until ``deadline``. ``on_result`` is
    called on the calling thread, so it may count without locks. When ``work`` raises, the failure is
    counted and logged (``failed`` says what failed), then ``on_error(member_id)`` runs on the worker
    thread (to put the portal back on its schedule, say) and its answer, or None, goes to
    ``on_result``."""
    workers = max(1, concurrency)
    report = RoundReport(name, period_s=period_s)
    started = time.monotonic()
    busy = 0.0  # the sum of per-portal times
    tried: set[str] = set()

    def timed(member_id: str) -> tuple[str, T | None, float]:
        if deadline is not None and time.monotonic() > deadline:
            return member_id, None, -1.0  # not started: left for the next run
        t0 = time.monotonic()
        result = _guarded(name, failed, work, on_error, member_id)
        return member_id, result, time.monotonic() - t0

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"round-{name}") as pool:
        while deadline is None or time.monotonic() < deadline:
            per = busy / report.done if report.done else _measured_cache.get(name, 0.0)
            page = [m for m in next_page(_page_size(per, workers, deadline), tried) if m not in tried]
            if not page:
                break
            tried.update(page)
            for member_id, result, took in pool.map(timed, page):
                if took < 0:
                    report.left += 1
                    continue
                report.done += 1
                busy += took
                on_result(member_id, result)
    report.elapsed_s = time.monotonic() - started
    if report.done:
        report.per_portal_s = busy / report.done
        _measured_cache[name] = report.per_portal_s
    if deadline is not None and time.monotonic() >= deadline:  # and those of the pages not taken
        report.left += _count_left(next_page, tried)
    report.capacity = int(workers * period_s / report.per_portal_s) if report.per_portal_s else 0
    _report(report, workers)
    return report


def _guarded(
    name: str,
    failed: str,
    work: Callable[[str], T],
    on_error: Callable[[str], T | None] | None,
    member_id: str,
) -> T | None:
    try:
        return work(member_id)
    except Exception as exc:  # whatever one portal answered, the round goes on for the others
        metrics.emit("PortalRoundsFailed", round=name, reason=type(exc).__name__)
        log_event(WARNING, failed, name, member_id, error=exc)
        return on_error(member_id) if on_error is not None else None


def _count_left(next_page: Pages, tried: set[str]) -> int:
    """The portals still due that no page took (at most LEFT_PAGES pages are counted)."""
    seen, left = set(tried), 0
    for _ in range(LEFT_PAGES):
        more = [m for m in next_page(MAX_PAGE, seen) if m not in seen]
        if not more:
            break
        seen.update(more)
        left += len(more)
    return left


def _page_size(per_portal_s: float, workers: int, deadline: float | None) -> int:
    """As many portals as fit in the time left at the measured pace (bounded: a page is one query)."""
    if not per_portal_s or deadline is None:
        return max(MIN_PAGE, workers * 4)
    fit = int(workers * max(0.0, deadline - time.monotonic()) / per_portal_s)
    return max(MIN_PAGE, min(MAX_PAGE, fit))


def _report(report: RoundReport, workers: int) -> None:
    metrics.emit(
        "RoundUtilisation", 100.0 * report.elapsed_s / report.period_s, unit="Percent", round=report.name
    )
    if report.behind:
        metrics.emit("RoundBehind", report.left)  # one alarm for every round; the log names it
        log_event(
            WARNING,
            "scheduled round ran out of time with portals still due; they come first next run",
            report.name,
            None,
            "behind",
            concurrency=workers,
            **report.as_dict(),
        )
    elif report.done:
        log_event(INFO, "scheduled round done", report.name, None, "done", **report.as_dict())
