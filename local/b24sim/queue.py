"""The cloud event queue: POSTs events to app handlers, asynchronously and without retries.

Real Bitrix24 never calls a handler directly: events go through queue servers, arrive with some delay, and
a failed or slow delivery is logged and dropped (api-reference/events/index.md). A box whose network blocks
those servers loses every online event silently. All three behaviours are reproduced here, and every attempt
is recorded in ``deliveries`` so tests can assert "exactly once" and "never retried".
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from b24sim import forms

log = logging.getLogger("b24sim.queue")

USER_AGENT = "Bitrix24 Webhook Engine"


@dataclass
class Delivery:
    """One attempt to deliver one event to one handler URL.

    ``outcome``: ``pending``, ``delivered`` (an HTTP answer came back; see ``status``), ``error`` (connection
    error or timeout; see ``error``), ``blocked`` (the portal cannot reach the queue) or ``suppressed`` (the
    app has not finished installing, so the portal sends nothing).
    """

    id: int
    portal: str
    event: str
    url: str
    handler_id: int | None
    outcome: str = "pending"
    status: int | None = None
    error: str | None = None
    queued_at: float = 0.0
    sent_at: float | None = None
    #: The form body exactly as sent (contains tokens: never log it).
    body: str = field(default="", repr=False)
    payload: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def summary(self) -> dict[str, Any]:
        """Everything except the payload (safe to show over the control API)."""
        return {
            "id": self.id,
            "portal": self.portal,
            "event": self.event,
            "url": self.url,
            "handler_id": self.handler_id,
            "outcome": self.outcome,
            "status": self.status,
            "error": self.error,
            "queued_at": self.queued_at,
            "sent_at": self.sent_at,
        }


class EventQueue:
    """Background delivery pool plus the synchronous path used by install/update/uninstall drivers."""

    def __init__(self, now: Callable[[], float], is_blocked: Callable[[str], bool], workers: int = 4) -> None:
        self._now = now
        self._is_blocked = is_blocked
        #: Seconds before a queued event is sent (the queue's "slight delay").
        self.delay_s = 0.0
        #: Handler timeout; a slower handler counts as a failed delivery.
        self.timeout_s = 5.0
        self.deliveries: list[Delivery] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._client: httpx.Client | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="b24sim-queue")
            self._client = httpx.Client(follow_redirects=False, headers={"User-Agent": USER_AGENT})

    def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- recording -------------------------------------------------------------------------------------
    def _record(
        self, portal: str, event: str, url: str, handler_id: int | None, payload: dict[str, Any]
    ) -> Delivery:
        delivery = Delivery(
            id=next(self._ids),
            portal=portal,
            event=event,
            url=url,
            handler_id=handler_id,
            queued_at=self._now(),
            body=forms.encode(payload),
            payload=payload,
        )
        with self._lock:
            self.deliveries.append(delivery)
        return delivery

    def record_suppressed(self, portal: str, event: str, url: str, handler_id: int | None) -> Delivery:
        delivery = self._record(portal, event, url, handler_id, {})
        delivery.outcome = "suppressed"
        log.info("event %s for %s suppressed: app installation not finished", event, portal)
        return delivery

    # -- sending ---------------------------------------------------------------------------------------
    def submit(
        self, portal: str, event: str, url: str, payload: dict[str, Any], handler_id: int | None
    ) -> Delivery:
        """Queue one delivery; it is sent from a worker thread."""
        delivery = self._record(portal, event, url, handler_id, payload)
        if self._pool is None:
            raise RuntimeError("the simulator is not started")
        with self._lock:
            self._pending += 1
        self._pool.submit(self._run, delivery)
        return delivery

    def send_now(
        self, portal: str, event: str, url: str, payload: dict[str, Any], handler_id: int | None = None
    ) -> tuple[Delivery, httpx.Response | None]:
        """Deliver in the caller's thread (install drivers want the handler's answer)."""
        delivery = self._record(portal, event, url, handler_id, payload)
        return delivery, self._attempt(delivery)

    def _run(self, delivery: Delivery) -> None:
        try:
            if self.delay_s > 0:
                time.sleep(self.delay_s)
            self._attempt(delivery)
        finally:
            with self._lock:
                self._pending -= 1
                self._idle.notify_all()

    def _attempt(self, delivery: Delivery) -> httpx.Response | None:
        if self._is_blocked(delivery.portal):
            delivery.outcome = "blocked"
            log.info(
                "event %s for %s dropped: portal cannot reach the queue", delivery.event, delivery.portal
            )
            return None
        client = self._client or httpx.Client(follow_redirects=False, headers={"User-Agent": USER_AGENT})
        delivery.sent_at = self._now()
        try:
            response = client.post(
                delivery.url,
                content=delivery.body.encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            # Never retried: the real queue logs the failure and moves on.
            delivery.outcome = "error"
            delivery.error = type(exc).__name__
            log.info("event %s for %s failed: %s", delivery.event, delivery.portal, delivery.error)
            return None
        finally:
            if client is not self._client:
                client.close()
        delivery.outcome = "delivered"
        delivery.status = response.status_code
        log.info("event %s for %s delivered: HTTP %s", delivery.event, delivery.portal, response.status_code)
        return response

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until no queued delivery is pending; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending
