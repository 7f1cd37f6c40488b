"""A portal's REST client that spends the portal's shared budget (worker/limiter.py) before each request,
waiting at most as long as the caller allows, and tags every call as the worker's."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from b24core.bitrix.errors import OperationTimeLimit, QueryLimitExceeded
from b24core.bitrix.rest import BATCH_LIMIT
from b24core.portals.model import Portal
from b24core.tokens.client import BatchResult
from b24core.worker.limiter import RateLimiter


class BudgetBusy(QueryLimitExceeded):
    """Our own view of the portal's budget has no room within the wait allowed (nothing was sent)."""


@dataclass(eq=False)  # a service, compared by identity
class LimitedClient:
    """The portal-bound client handlers get: every HTTP call first takes its share of the budget.

    Every call and every command of a batch also carries the app's ``auth_connector``: a change the
    app makes itself is then not recorded in the portal's offline queue for the app's own offline
    bindings (api-reference/events/offline-events.md), so in pull and lossless mode a handler's writes
    do not come back to it as events. Elsewhere the parameter changes nothing.
    """

    client: Any
    limiter: RateLimiter
    member_id: str
    wait: Callable[[float], None]
    max_wait_s: float
    connector: str = ""
    #: Seconds spent waiting for the portal's budget (not the portal being slow: see dispatch.py).
    waited_s: float = 0.0

    def _tagged(self, params: dict[str, Any] | None) -> dict[str, Any]:
        body = dict(params or {})
        if self.connector and not any(k.lower() == "auth_connector" for k in body):
            body["auth_connector"] = self.connector
        return body

    @property
    def portal(self) -> Portal:
        p: Portal = self.client.portal
        return p

    def _spend(self, method: str | None, wait_up_to: float | None = None) -> None:
        waited = 0.0
        most = self.max_wait_s if wait_up_to is None else max(0.0, min(self.max_wait_s, wait_up_to))
        while True:
            delay = self.limiter.acquire(self.member_id, method=method)
            if delay <= 0:
                return
            if waited + delay > most:
                raise BudgetBusy("the portal's REST budget is spent for now")
            self.wait(delay)
            waited += delay
            self.waited_s += delay

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self._spend(method)
        body = self._tagged(params)
        return self._guard(method, lambda: self.client.call(method, body))

    def batch(
        self,
        commands: dict[str, tuple[str, dict[str, Any]]],
        halt: bool = False,
        wait_up_to: float | None = None,
    ) -> BatchResult:
        """Like PortalClient.batch (the same result type); ``wait_up_to`` bounds the wait for budget
        (the worker's read deadline)."""
        out = BatchResult()
        items = [(key, (method, self._tagged(params))) for key, (method, params) in commands.items()]
        for start in range(0, len(items), BATCH_LIMIT):
            chunk = dict(items[start : start + BATCH_LIMIT])
            methods = {m for m, _ in chunk.values()}
            self._spend(next(iter(methods)) if len(methods) == 1 else None, wait_up_to)
            answer = self._guard("batch", lambda c=chunk: self.client.batch(c, halt=halt))  # type: ignore[misc]
            out.result.update(answer["result"] or {})
            out.error.update(answer["error"] or {})
            times = answer["time"] if isinstance(answer, BatchResult) else answer.get("time")
            out.time.update(times or {})
            if isinstance(answer, BatchResult):
                out.errors.update(answer.errors)
                out.requests += answer.requests
        return out

    def _guard(self, method: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except QueryLimitExceeded:
            self.limiter.saturate(self.member_id)
            raise
        except OperationTimeLimit as exc:
            self.limiter.block(self.member_id, method, exc.reset_at or time.time() + 60)
            raise
