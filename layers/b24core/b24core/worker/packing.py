"""How a portal's reads are packed into `batch` requests of 50 when the budget is what is scarce.

A request costs the portal the same whether it carries 1 read or 50, so in a backlog the worker holds
a part-filled request back for company (its events go back to the queue and ride with later ones),
and claims the objects it is about to read so that a second worker does not buy the same read
(worker/read_claims.py). Both cost something of their own - a hold at least a second of latency
(SQS delays are whole seconds), a claim a transaction on the read path - so each is used only where
the request it saves costs the portal's budget more: at a slow limit (Y of 1/s or less, a box's own)
and, for claims, while another worker spends the same portal's budget.
"""

from __future__ import annotations

import time
from typing import Any

from b24core.bitrix.rest import BATCH_LIMIT
from b24core.worker import retry
from b24core.worker.limiter import RateLimiter
from b24core.worker.plan import Plan
from b24core.worker.read_claims import CLAIM_HANDLING_S, ReadClaims, claimed_delay
from b24core.worker.read_marks import ObjectKey, covered

MAX_HOLDS = 2  # times one event may be sent back to pack its read with later events
#: A request that costs the portal's budget this long (Y <= 1/s) is worth a hold or a claim to save.
DEAR_REQUEST_S = 1.0


class ReadPacking:
    """The Worker's packing of one portal's reads (a mixin: it shares the Worker's limiter, claims,
    read deadline and way of sending events back)."""

    limiter: RateLimiter
    claims: ReadClaims | None
    _read_deadline: float

    def _defer(
        self, plan: Plan, mids: list[str], delay: int, hold: bool = False, why: str = "deferred"
    ) -> None:
        raise NotImplementedError

    def _claim(self, plan: Plan, member_id: str, queue: list[Any]) -> tuple[list[Any], list[Any]]:
        """The next request's reads (up to 50) and the queue left. An object another worker is reading
        now is not bought twice (read_claims.py): its event is skipped when that read already covers
        it, else it comes back when the read should be marked; the request is filled from the queue."""
        if self.claims is None or not self._claims_pay(member_id):
            return queue[:BATCH_LIMIT], queue[BATCH_LIMIT:]
        hold = max(0.0, self._read_deadline - time.monotonic()) + CLAIM_HANDLING_S
        chunk: list[tuple[str, ObjectKey]] = []
        while queue and len(chunk) < BATCH_LIMIT:
            ask, queue = queue[: BATCH_LIMIT - len(chunk)], queue[BATCH_LIMIT - len(chunk) :]
            refused = self.claims.take(member_id, {key: plan.events[mid].ts for mid, key in ask}, hold)
            chunk += [(mid, key) for mid, key in ask if key not in refused]
            later = []
            for mid, key in ask:
                if key in refused and covered(plan.events[mid].ts, refused[key].read_at):
                    plan.skip[mid] = "read_since"  # the other worker's read has been marked since
                elif key in refused:
                    later.append(mid)
            if later:
                left = max(refused[key].left_s for mid, key in ask if mid in later)
                self._defer(plan, later, claimed_delay(left), why="claimed")
        return chunk, queue

    def _release(self, member_id: str, chunk: list[tuple[str, ObjectKey]]) -> None:
        if self.claims is not None and chunk:
            self.claims.release(member_id, [key for _, key in chunk])

    def _hold_for_packing(self, plan: Plan, member_id: str, chunk: list[Any]) -> bool:
        """A backlog is being read (this batch filled a request already): its part-filled last read goes
        back to ride with later events instead of spending a whole request (at most MAX_HOLDS times)."""
        if len(chunk) >= BATCH_LIMIT or held_enough(plan, chunk):
            return False
        self._hold(plan, member_id, chunk)
        return True

    def _holds_pay(self, member_id: str) -> bool:
        """A hold costs its events at least a second (SQS delays are whole seconds): it pays where one
        request costs the portal's budget at least as long (a slow limit, or a box's own)."""
        return self.limiter.request_s(member_id) >= DEAR_REQUEST_S

    def _claims_pay(self, member_id: str) -> bool:
        """A claim costs a transaction on the read path (2 write units an object): it pays only where
        another worker reads the portal too and a read bought twice costs its budget a second or more."""
        return self.limiter.shared(member_id) and self.limiter.request_s(member_id) >= DEAR_REQUEST_S

    def _hold(self, plan: Plan, member_id: str, chunk: list[Any]) -> None:
        """Back to the queue until the budget has room for a request, to ride with later events."""
        wait = self.limiter.wait_for(member_id)
        delay = int(min(retry.MAX_DELAY_S, max(1.0, wait + 1.0)))
        self._defer(plan, [mid for mid, _ in chunk], delay, hold=True)


def held_enough(plan: Plan, reads: list[Any]) -> bool:
    """Some event of these reads was held for company MAX_HOLDS times: read now, whatever it costs."""
    return any(plan.messages[mid].held >= MAX_HOLDS for mid, _ in reads)
