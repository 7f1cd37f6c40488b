"""Portal REST dispatch: authentication, rate limit, method lookup, scope check, ``batch``, ``time``.

Order of checks for one HTTP request: portal alive -> token (401 NO_AUTH_FOUND / expired_token) -> leaky
bucket (503 QUERY_LIMIT_EXCEEDED; a ``batch`` is one hit) -> method known on this portal (404
ERROR_METHOD_NOT_FOUND) -> scope (403 insufficient_scope) -> method time limit (429) -> the method.
Errors are ``{"error", "error_description"}``; successes always carry the documented ``time`` object.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from b24sim import api_entities, api_events, api_misc, api_placement, api_system, forms  # noqa: F401  (register handlers)
from b24sim.catalog import METHODS
from b24sim.entities import iso
from b24sim.registry import HANDLERS, CallContext, MethodResult, RestError, not_found, php_json, truthy
from b24sim.tokens import AccessToken

if TYPE_CHECKING:
    from b24sim.portal import Portal
    from b24sim.simulator import Simulator

log = logging.getLogger("b24sim.rest")

BATCH_LIMIT = 50
_REFERENCE = re.compile(r"\$result\[([^\]]*)\]((?:\[[^\]]*\])*)")


@dataclass(frozen=True)
class CallRecord:
    """One HTTP request to a portal's REST API (no token values)."""

    domain: str
    method: str
    status: int
    error: str | None
    was_batch: bool
    subcalls: int
    sub_methods: tuple[str, ...]
    user_id: int | None
    at: float


def normalize_method(name: str) -> str:
    name = name.strip("/").lower()
    return name[: -len(".json")] if name.endswith(".json") else name


def time_object(
    start: float,
    finish: float,
    processing: float,
    operating: float | None = None,
    reset_at: int | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "start": start,
        "finish": finish,
        "duration": max(0.0, finish - start),
        "processing": processing,
        "date_start": iso(start),
        "date_finish": iso(finish),
    }
    if reset_at is not None:
        obj["operating_reset_at"] = reset_at
    if operating is not None:
        obj["operating"] = operating
    return obj


class RestApi:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    # -- entry point ----------------------------------------------------------------------------------
    def handle(
        self, portal: Portal, method: str, params: dict[str, Any], bearer: str | None
    ) -> tuple[int, dict[str, Any]]:
        sim = self.sim
        method = normalize_method(method)
        if portal.rest_latency_s > 0:
            time.sleep(portal.rest_latency_s)  # outside the lock: only this request is slow
        started, t0 = sim.clock.now(), time.perf_counter()
        token: AccessToken | None = None
        sub_methods: tuple[str, ...] = ()
        with sim.lock:
            try:
                if portal.deleted:
                    raise RestError("PORTAL_DELETED", "Portal was deleted", 500)
                token = self._authenticate(portal, params, bearer)
                if not portal.bucket.hit(sim.time_scale):
                    raise RestError("QUERY_LIMIT_EXCEEDED", "Too many requests", 503)
                ctx = CallContext(sim, portal, token, params)
                if method == "batch" and portal.has_method("batch"):
                    body, sub_methods = self._batch(ctx)
                    body["time"] = time_object(started, sim.clock.now(), time.perf_counter() - t0)
                else:
                    result = self._execute(ctx, method)
                    body = {"result": result.result}
                    if result.next is not None:
                        body["next"] = result.next
                    if result.total is not None:
                        body["total"] = result.total
                    now = sim.clock.now()
                    body["time"] = time_object(
                        started,
                        now,
                        time.perf_counter() - t0,
                        portal.operating.operating(method, now),
                        portal.operating.reset_at(method, now),
                    )
                status, code = 200, None
            except RestError as err:
                status, code, body = err.status, err.code, err.body()
            sim.calls.append(
                CallRecord(
                    domain=portal.domain,
                    method=method,
                    status=status,
                    error=code,
                    was_batch=method == "batch",
                    subcalls=len(sub_methods),
                    sub_methods=sub_methods,
                    user_id=token.user_id if token else None,
                    at=started,
                )
            )
        log.info("%s %s -> %s %s", portal.domain, method, status, code or "ok")
        return status, body

    def _authenticate(self, portal: Portal, params: dict[str, Any], bearer: str | None) -> AccessToken:
        hook = params.pop("_sim_webhook", None)
        if isinstance(hook, tuple):
            user_id, code = hook
            params.pop("auth", None)
            found = portal.incoming_webhooks.get(code)
            if found is None or found[0] != user_id:
                raise RestError("INVALID_CREDENTIALS", "Invalid request credentials", 401)
            return AccessToken("", portal.member_id, user_id, found[1], float("inf"), webhook=True)
        raw = params.pop("auth", None) or bearer
        value = raw if isinstance(raw, str) else ""
        if not value:
            raise RestError("NO_AUTH_FOUND", "Wrong authorization data", 401)
        token = self.sim.tokens.access(value)
        if token is None or token.revoked or token.member_id != portal.member_id or portal.app is None:
            raise RestError("NO_AUTH_FOUND", "Wrong authorization data", 401)
        if self.sim.tokens.is_expired(token):
            raise RestError("expired_token", "The access token provided has expired.", 401)
        if portal.auth_server_blocked:
            # The box checks OAuth tokens at the authorization server, which it cannot reach.
            raise RestError("NO_AUTH_FOUND", "Wrong authorization data", 401)
        return token

    # -- one method -----------------------------------------------------------------------------------
    def _execute(self, ctx: CallContext, method: str) -> MethodResult:
        portal = ctx.portal
        handler = HANDLERS.get(method)
        if not portal.has_method(method) or handler is None:
            raise not_found()
        failure = portal.failing_methods.get(method)
        if failure:
            raise RestError(failure, "Internal error (simulated)", 500)
        if ctx.token.webhook and METHODS[method].app_only:
            raise RestError("ACCESS_DENIED", "Access denied! Application context required", 403)
        if not portal.scope_allows(METHODS[method].scope, ctx.granted):
            raise RestError(
                "insufficient_scope",
                "The request requires higher privileges than provided by the access token",
                403,
            )
        now = self.sim.clock.now()
        limit = portal.operating_limit_s
        if limit is not None and portal.operating.operating(method, now) > limit:
            raise RestError("OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.", 429)
        t0 = time.perf_counter()
        try:
            return handler(ctx)
        finally:
            spent = time.perf_counter() - t0 + portal.method_cost.get(method, 0.0)
            portal.operating.add(method, now, spent)

    # -- batch ----------------------------------------------------------------------------------------
    def _batch(self, ctx: CallContext) -> tuple[dict[str, Any], tuple[str, ...]]:
        cmd = ctx.param("cmd")
        halt = truthy(ctx.param("halt", False))
        if isinstance(cmd, list):
            items = [(str(i), c) for i, c in enumerate(cmd)]
        elif isinstance(cmd, dict):
            items = [(str(k), c) for k, c in cmd.items()]
        else:
            items = []
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        totals: dict[str, Any] = {}
        nexts: dict[str, Any] = {}
        times: dict[str, Any] = {}
        called: list[str] = []
        for index, (key, command) in enumerate(items):
            started, t0 = self.sim.clock.now(), time.perf_counter()
            try:
                if index >= BATCH_LIMIT:
                    raise RestError("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded", 400)
                name, params = self._parse_command(command, results)
                called.append(name)
                if name == "batch":
                    raise RestError(
                        "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage", 405
                    )
                sub = CallContext(self.sim, ctx.portal, ctx.token, params, in_batch=True)
                result = self._execute(sub, name)
            except RestError as err:
                errors[key] = err.body()
                if halt:
                    break
                continue
            results[key] = result.result
            if result.total is not None:
                totals[key] = result.total
            if result.next is not None:
                nexts[key] = result.next
            times[key] = time_object(started, self.sim.clock.now(), time.perf_counter() - t0)
        body = {
            "result": {
                "result": php_json(results),
                "result_error": php_json(errors),
                "result_total": php_json(totals),
                "result_next": php_json(nexts),
                "result_time": php_json(times),
            }
        }
        return body, tuple(called)

    def _parse_command(self, command: Any, results: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if isinstance(command, dict):
            # SDK style {"method": ..., "params": {...}}
            name = str(command.get("method") or "")
            params = command.get("params") if isinstance(command.get("params"), dict) else {}
        else:
            name, _, query = str(command).partition("?")
            params = forms.parse(query)
        params = {k: _substitute(v, results) for k, v in dict(params or {}).items() if k != "auth"}
        return normalize_method(name), params


def _resolve(results: dict[str, Any], key: str, path: str) -> tuple[bool, Any]:
    if key not in results:
        return False, None
    value = results[key]
    for segment in re.findall(r"\[([^\]]*)\]", path):
        if isinstance(value, dict) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return False, None
    return True, value


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else ""
    return "" if value is None else str(value)


def _substitute(value: Any, results: dict[str, Any]) -> Any:
    """Replace ``$result[key][field]...`` references with values of earlier sub-calls."""
    if isinstance(value, dict):
        return {k: _substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, results) for v in value]
    if not isinstance(value, str) or "$result[" not in value:
        return value
    whole = _REFERENCE.fullmatch(value)
    if whole:
        found, resolved = _resolve(results, whole.group(1), whole.group(2))
        return resolved if found else value

    def replace(match: re.Match[str]) -> str:
        found, resolved = _resolve(results, match.group(1), match.group(2))
        return _as_text(resolved) if found else match.group(0)

    return _REFERENCE.sub(replace, value)
