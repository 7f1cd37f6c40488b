"""The shared leaky-bucket budget on DynamoDB Local: concurrent workers never overspend it."""

from __future__ import annotations

import threading

from b24core.worker.limiter import EDGE, RateLimit, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def limiter(services, clock) -> RateLimiter:
    return RateLimiter(
        services.client("dynamodb"), services.resources["AppTable"], RateLimit(50, 2), clock=clock
    )


def test_concurrent_workers_get_exactly_the_burst_then_wait(services, member_id):
    clock = Clock()
    granted: list[int] = []
    lock = threading.Lock()

    def spend() -> None:
        mine = limiter(services, clock)
        for _ in range(20):
            if mine.acquire(member_id) == 0.0:
                with lock:
                    granted.append(1)

    threads = [threading.Thread(target=spend) for _ in range(6)]  # 120 attempts at one instant
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 50
    wait = limiter(services, clock).acquire(member_id)
    assert wait == (1 + EDGE) / 2  # one more request needs half a second at Y=2, plus the edge margin


def test_budget_drains_at_y_per_second(services, member_id):
    clock = Clock()
    lim = limiter(services, clock)
    while lim.acquire(member_id) == 0.0:
        pass
    clock.now += 5.0  # 10 requests' worth drained
    assert sum(1 for _ in range(20) if lim.acquire(member_id) == 0.0) == 10


def test_query_limit_exceeded_fills_the_bucket_for_everyone(services, member_id):
    clock = Clock()
    lim = limiter(services, clock)
    lim.saturate(member_id)
    assert limiter(services, clock).acquire(member_id) > 0


def test_per_portal_limits_and_method_blocks(services, member_id):
    clock = Clock()
    lim = limiter(services, clock)
    assert lim.request_s(member_id) == 0.5  # the default Y = 2/s
    lim.configure(member_id, RateLimit(250, 5))  # Enterprise
    assert lim.request_s(member_id) == 0.2  # what a request costs this portal's budget
    assert sum(1 for _ in range(300) if lim.acquire(member_id) == 0.0) == 250
    lim.block(member_id, "crm.deal.list", clock.now + 60)
    clock.now += 100
    assert lim.acquire(member_id, method="crm.deal.get") == 0.0
    lim.block(member_id, "crm.deal.list", clock.now + 60)
    assert 59 <= lim.acquire(member_id, method="crm.deal.list") <= 60


def test_waiting_time_is_told_without_spending(services, member_id):
    clock = Clock()
    budget = limiter(services, clock)
    for _ in range(50):
        assert budget.acquire(member_id) == 0.0
    assert budget.wait_for(member_id) == (1 + EDGE) / 2  # one request drains in 1 / Y seconds
    assert budget.wait_for(member_id, cost=10) == (10 + EDGE) / 2
    assert budget.wait_for(member_id) == (1 + EDGE) / 2  # asking spent nothing
    clock.now += (1 + EDGE) / 2
    assert budget.wait_for(member_id) == 0.0 and budget.acquire(member_id) == 0.0


def test_read_marks_round_trip_past_the_batch_api_page_sizes(services, member_id):
    from b24core.worker.read_marks import ReadMarks

    marks = ReadMarks(services.client("dynamodb"), services.resources["AppTable"])
    reads = {("crm.deal.get", str(i)): 1_000.0 + i for i in range(130)}  # > 100 keys, > 25 writes
    marks.mark(member_id, reads)
    got = marks.last_reads(member_id, [*reads, ("crm.deal.get", "999")])
    assert got == reads
    assert marks.last_reads("someone-else", list(reads)) == {}


def test_a_worker_learns_that_another_spends_the_same_portals_budget(services, member_id):
    """Read claims pay only when two workers read one portal: each spend records its spender."""
    clock = Clock()
    a, b = limiter(services, clock), limiter(services, clock)
    assert a.acquire(member_id) == 0.0 and not a.shared(member_id)
    assert b.acquire(member_id) == 0.0 and b.shared(member_id)  # a spent just before
    assert not a.shared(member_id)
    a.acquire(member_id)
    assert a.shared(member_id)
    clock.now += 61  # nobody else for a minute: alone again
    assert not b.shared(member_id)
    b.acquire(member_id)
    assert not b.shared(member_id)  # b itself spent last
