"""A scheduled round over the fleet (probe, pull, change audit): portals in parallel, sized to the period.

One portal at a time, a round over ~600 boxes outgrows its minute and falls behind without a word. Here
a round runs its portals on a bounded pool of threads, one thread per portal (a portal appears once per
round, so its own REST budget and limiter see no second caller from this round), and takes its work in
pages as long as its time lasts, so it sizes itself to the fleet: a page is as large as the portals that
fit in the time left at the per-portal time measured so far (this run's, else the last run's of this
process). When the time runs out with portals still due, it says so (``RoundBehind`` with the count, and
a WARNING naming the capacity and the concurrency to raise); every run reports ``RoundUtilisation``,
the share of its period it took. The portals it did not reach stay due, earliest first, so the next run
starts with them.
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


def run_round(
    name: str,
    next_page: Callable[[int, set[str]], list[str]],
    work: Callable[[str], T],
    on_result: Callable[[str, T], None],
    *,
    concurrency: int,
    deadline: float | None,
    period_s: float,
) -> RoundReport:
    """Run ``work`` for every portal ``next_page(size, tried)`` gives (due portals not yet tried in this
    run; an empty page ends the round), ``concurrency`` at a time, until ``deadline``. ``on_result`` is
    called on the calling thread, so it may count without locks. ``work`` must not raise."""
    workers = max(1, concurrency)
    report = RoundReport(name, period_s=period_s)
    started = time.monotonic()
    busy = 0.0  # the sum of per-portal times
    tried: set[str] = set()

    def timed(member_id: str) -> tuple[str, T | None, float]:
        if deadline is not None and time.monotonic() > deadline:
            return member_id, None, -1.0  # not started: left for the next run
        t0 = time.monotonic()
        result = work(member_id)
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
                on_result(member_id, result)  # type: ignore[arg-type]
    report.elapsed_s = time.monotonic() - started
    if report.done:
        report.per_portal_s = busy / report.done
        _measured_cache[name] = report.per_portal_s
    if deadline is not None and time.monotonic() >= deadline:  # and those of the pages not taken
        report.left += _count_left(next_page, tried)
    report.capacity = int(workers * period_s / report.per_portal_s) if report.per_portal_s else 0
    _report(report, workers)
    return report


def _count_left(next_page: Callable[[int, set[str]], list[str]], tried: set[str]) -> int:
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
