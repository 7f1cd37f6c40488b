"""A REST client bound to one portal: stored tokens, refresh on expiry, batch, list paging.

* ``call`` / ``call_raw``: one method. On ``expired_token`` the token keeper refreshes (single-flight,
  at the authorization server) and the call is retried once with the new token. On ``NO_AUTH_FOUND``
  the store is re-read (a reinstall or a peer may have stored a new pair) and the call retried once
  if it changed. A redirect (the portal's address changed) is followed only after the authorization
  server confirms the new address, which is then stored.
* ``batch``: named commands in requests of up to 50, with ``halt``; per-command errors are typed.
* ``iter_list`` (``start``/``next`` paging) and ``iter_by_id`` (the fast ``>ID`` + ``start=-1`` mode of
  settings/performance/huge-data.md, which skips counting).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from b24core.bitrix.errors import (
    B24Error,
    ExpiredToken,
    InvalidToken,
    NoAuthFound,
    PortalMoved,
    error_from_payload,
)
from b24core.bitrix.rest import BATCH_LIMIT, PAGE_SIZE, RestAnswer, call_rest
from b24core.bitrix.values import as_int, is_digits
from b24core.bitrix.webhook import IncomingWebhook, webhook_call
from b24core.portals.model import Portal
from b24core.portals.states import PortalState, TokenState
from b24core.tokens.keeper import TokenKeeper
from b24core.tokens.outcomes import PortalNotInstalled, PortalUnavailable, ReauthRequired, SubscriptionExpired


@dataclass
class BatchResult:
    """What a (possibly multi-request) batch returned, keyed by command name.

    ``errors`` holds typed errors; ``error`` the raw ``{"error", "error_description"}`` bodies.
    ``skipped`` lists commands never sent because ``halt`` stopped at an earlier error.
    """

    result: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, B24Error] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    next: dict[str, int] = field(default_factory=dict)
    time: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    requests: int = 0

    def __getitem__(self, key: str) -> Any:
        """``answer["result"]`` / ``answer["error"]`` as the first version's dict answer had."""
        if key not in ("result", "error", "total", "next", "time", "skipped", "errors"):
            raise KeyError(key)
        return getattr(self, key)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.skipped


@dataclass(eq=False)  # a service, compared by identity
class PortalClient:
    portal: Portal
    keeper: TokenKeeper
    timeout_s: float = 10.0
    http: httpx.Client | None = None
    webhook: IncomingWebhook | None = None

    def __post_init__(self) -> None:
        self.last_recovery_s: float | None = None

    # ------------------------------------------------------------------ single calls
    def _usable(self) -> Portal:
        p = self.portal
        if p.state != PortalState.ACTIVE or p.token_state == TokenState.UNINSTALLED:
            raise PortalNotInstalled(f"portal is {p.state}/{p.token_state}")
        if p.token_state == TokenState.REAUTH_REQUIRED:
            raise ReauthRequired("the portal's admin must open the app again")
        if p.token_state == TokenState.PAYMENT_REQUIRED:
            raise SubscriptionExpired("the app's subscription on this portal has expired")
        return p

    def _send(self, portal: Portal, method: str, params: dict[str, Any]) -> RestAnswer:
        try:
            return call_rest(
                portal.client_endpoint, method, params, portal.access_token, self.timeout_s, self.http
            )
        except PortalMoved as moved:
            self.portal = self.keeper.relocate(portal, moved.location, method)
            return call_rest(
                self.portal.client_endpoint,
                method,
                params,
                self.portal.access_token,
                self.timeout_s,
                self.http,
            )

    def call_raw(self, method: str, params: dict[str, Any] | None = None) -> RestAnswer:
        if self.webhook is not None:
            if self.portal.state != PortalState.ACTIVE:
                raise PortalNotInstalled(f"portal is {self.portal.state}")
            return webhook_call(self.webhook, method, dict(params or {}), self.timeout_s, self.http)
        portal = self._usable()
        body = dict(params or {})
        try:
            return self._send(portal, method, body)
        except ExpiredToken:
            started = time.perf_counter()
            self.portal = self.keeper.refresh(self.portal)
            answer = self._send(self.portal, method, body)
            self.last_recovery_s = time.perf_counter() - started
            return answer
        except (NoAuthFound, InvalidToken):
            latest = self.keeper.store.get(portal.member_id)
            if latest is None or latest.access_token == portal.access_token:
                raise
            self.portal = latest
            return self._send(self._usable(), method, body)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self.call_raw(method, params).result

    # ------------------------------------------------------------------ batch
    def batch(self, commands: dict[str, tuple[str, dict[str, Any]]], halt: bool = False) -> BatchResult:
        """Run named commands in ``batch`` requests of up to 50 (each request is one rate-limit hit).

        ``$result[key]`` references work within one request of 50; with ``halt`` the first error
        stops the rest, including later requests.
        """
        out = BatchResult()
        items = list(commands.items())
        for start in range(0, len(items), BATCH_LIMIT):
            chunk = items[start : start + BATCH_LIMIT]
            if halt and out.errors:
                out.skipped.extend(key for key, _ in chunk)
                continue
            cmd = {key: _command(method, params) for key, (method, params) in chunk}
            answer = self.call("batch", {"halt": 1 if halt else 0, "cmd": cmd})
            out.requests += 1
            section = answer if isinstance(answer, dict) else {}
            out.result.update(_mapping(section.get("result")))
            for key, err in _mapping(section.get("result_error")).items():
                out.error[key] = err
                payload = err if isinstance(err, dict) else {"error": str(err)}
                out.errors[key] = error_from_payload(payload)
            out.total.update(_counts(section.get("result_total")))
            out.next.update(_counts(section.get("result_next")))
            out.time.update(_mapping(section.get("result_time")))
            if halt:
                done = set(out.result) | set(out.error)
                out.skipped.extend(key for key, _ in chunk if key not in done)
        return out

    # ------------------------------------------------------------------ lists
    def iter_list(
        self, method: str, params: dict[str, Any] | None = None, key: str | None = None
    ) -> Iterator[Any]:
        """Every item of a list method, page by page through ``start`` / ``next``."""
        body = dict(params or {})
        start = int(body.pop("start", 0) or 0)
        while True:
            answer = self.call_raw(method, {**body, "start": start})
            yield from _items(answer.result, key)
            if answer.next is None or answer.next <= start:
                return
            start = answer.next

    def iter_by_id(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        id_field: str = "ID",
        key: str | None = None,
        after: int = 0,
    ) -> Iterator[Any]:
        """Every item, fast: order by ``id_field``, filter ``>id_field`` = last seen, ``start=-1``.

        No ``total`` is counted and no ``next`` used; paging ends at a page shorter than 50.
        """
        body = dict(params or {})
        base_filter = dict(body.pop("filter", None) or {})
        last = after
        while True:
            page_params = {
                **body,
                "order": {id_field: "ASC"},
                "filter": {**base_filter, f">{id_field}": last},
                "start": -1,
            }
            items = _items(self.call(method, page_params), key)
            yield from items
            if len(items) < PAGE_SIZE:
                return
            tail = items[-1]
            value = tail.get(id_field) if isinstance(tail, dict) else None
            number = as_int(value)
            if number is None or number <= last:
                return
            last = number


def _counts(value: Any) -> dict[str, int]:
    """A batch's result_total / result_next: entries that are plain non-negative integers (a box may
    answer anything; the rest is ignored, never raised)."""
    return {k: int(v) for k, v in _mapping(value).items() if is_digits(v)}


def _mapping(value: Any) -> dict[str, Any]:
    """PHP encodes an empty associative array as ``[]``: treat lists as (index-keyed) maps."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def _items(result: Any, key: str | None) -> list[Any]:
    if isinstance(result, list):
        return result
    if isinstance(result, dict):
        if key is not None:
            found = result.get(key)
            return found if isinstance(found, list) else []
        lists = [v for v in result.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return []


def _command(method: str, params: dict[str, Any]) -> str:
    query = urlencode(_flatten(params))
    return f"{method}?{query}" if query else method


def _flatten(params: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            out.extend(_flatten(value, name))
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                if isinstance(v, dict):
                    out.extend(_flatten(v, f"{name}[{i}]"))
                else:
                    out.append((f"{name}[{i}]", _scalar(v)))
        else:
            out.append((name, _scalar(value)))
    return out


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"  # as PHP's http_build_query writes booleans
    return str(value)


__all__ = ["BatchResult", "PortalClient", "PortalUnavailable"]
