"""Event methods: events, event.bind/get/unbind/test and the offline queue (event.offline.*)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from b24sim.catalog import EVENTS
from b24sim.entities import iso
from b24sim.portal import OfflineRecord
from b24sim.registry import CallContext, MethodResult, RestError, as_list, as_mapping, method, truthy

PAGE_SIZE = 50


def _require_app(ctx: CallContext) -> None:
    if ctx.portal.app is None:
        raise RestError("ACCESS_DENIED", "Access denied! Application context required", 403)


@method("events")
def events(ctx: CallContext) -> MethodResult:
    names = ctx.portal.event_names()
    if ctx.param("scope"):
        wanted = str(ctx.param("scope"))
        return MethodResult([n for n in names if EVENTS[n].scope == wanted])
    if truthy(ctx.param("full", False)):
        return MethodResult(names)
    granted = ctx.granted
    return MethodResult([n for n in names if ctx.portal.scope_allows(EVENTS[n].scope, granted)])


def _auth_type(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


@method("event.bind")
def event_bind(ctx: CallContext) -> MethodResult:
    _require_app(ctx)
    event = str(ctx.param("event") or "").strip().upper()
    handler = str(ctx.param("handler") or "").strip()
    offline = str(ctx.param("event_type") or "online").lower() == "offline"
    auth_type = _auth_type(ctx.param("auth_type"))
    connector = str(ctx.param("auth_connector") or "")
    options = as_mapping(ctx.param("options")) or {}
    info = EVENTS.get(event)
    if (
        not ctx.portal.has_event(event)
        or info is None
        or not ctx.portal.scope_allows(info.scope, ctx.granted)
    ):
        raise RestError("ERROR_EVENT_NOT_FOUND", "Event not found", 400)
    admin = ctx.portal.is_admin(ctx.user_id)
    if offline and not admin:
        raise RestError(
            "ACCESS_DENIED", "Access denied! Offline events binding requires administrator access rights", 403
        )
    if auth_type and auth_type != ctx.user_id and not admin:
        raise RestError(
            "ACCESS_DENIED",
            "Access denied! Event binding with AUTH_TYPE requires administrator access rights",
            403,
        )
    if not admin:
        # A regular user's handlers run on their own behalf.
        auth_type = ctx.user_id
    if not offline and not handler:
        raise RestError("ERROR_ARGUMENT", "Argument 'handler' is null or empty", 400)
    if offline:
        handler = ""
    for b in ctx.portal.bindings:
        same = b.event == event and b.offline == offline
        if same and (
            b.auth_connector == connector if offline else (b.handler == handler and b.auth_type == auth_type)
        ):
            raise RestError("ERROR_CORE", "Unable to set event handler: Handler already binded", 400)
    ctx.portal.new_binding(
        event=event,
        handler=handler,
        auth_type=auth_type,
        offline=offline,
        auth_connector=connector,
        options=options,
        user_id=ctx.user_id,
    )
    return MethodResult(True)


def _visible(ctx: CallContext) -> list[Any]:
    if ctx.portal.is_admin(ctx.user_id):
        return list(ctx.portal.bindings)
    return [b for b in ctx.portal.bindings if b.user_id == ctx.user_id and not b.offline]


@method("event.get")
def event_get(ctx: CallContext) -> MethodResult:
    _require_app(ctx)
    rows = []
    for b in _visible(ctx):
        row: dict[str, Any] = {
            "event": b.event,
            "handler": b.handler,
            "auth_type": str(b.auth_type),
            "offline": 1 if b.offline else 0,
        }
        rows.append(row)
    return MethodResult(rows)


@method("event.unbind")
def event_unbind(ctx: CallContext) -> MethodResult:
    _require_app(ctx)
    offline = str(ctx.param("event_type") or "online").lower() == "offline"
    admin = ctx.portal.is_admin(ctx.user_id)
    if offline and not admin:
        raise RestError(
            "ACCESS_DENIED",
            "Access denied! Offline events unbinding requires administrator access rights",
            403,
        )
    event = str(ctx.param("event") or "").strip().upper()
    handler = str(ctx.param("handler") or "").strip()
    has_auth_type = ctx.has_param("auth_type")
    auth_type = _auth_type(ctx.param("auth_type"))
    if has_auth_type and auth_type and auth_type != ctx.user_id and not admin:
        raise RestError(
            "ACCESS_DENIED",
            "Access denied! Event unbinding with AUTH_TYPE requires administrator access rights",
            403,
        )

    def matches(b: Any) -> bool:
        return (
            b.offline == offline
            and (not event or b.event == event)
            and (offline or not handler or b.handler == handler)
            and (not has_auth_type or b.auth_type == auth_type)
            and (admin or b.user_id == ctx.user_id)
        )

    removed = [b for b in ctx.portal.bindings if matches(b)]
    ctx.portal.bindings = [b for b in ctx.portal.bindings if b not in removed]
    return MethodResult({"count": len(removed)})


@method("event.test")
def event_test(ctx: CallContext) -> MethodResult:
    _require_app(ctx)
    query = {k: v for k, v in ctx.params.items() if k.lower() not in ("auth", "auth_connector")}
    ctx.fire("ONAPPTEST", {"QUERY": query, "LANGUAGE_ID": ctx.portal.language})
    return MethodResult(1)


# -- offline queue ---------------------------------------------------------------------------------------
def _require_admin(ctx: CallContext) -> None:
    _require_app(ctx)
    if not ctx.portal.is_admin(ctx.user_id):
        raise RestError("ACCESS_DENIED", "Access denied!", 403)


def _row(record: OfflineRecord, with_state: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "ID": str(record.id),
        "TIMESTAMP_X": iso(record.timestamp),
        "EVENT_NAME": record.event,
        "EVENT_DATA": record.data or False,
        "EVENT_ADDITIONAL": False,
        "MESSAGE_ID": record.message_id,
    }
    if with_state:
        row["PROCESS_ID"] = record.process_id
        row["ERROR"] = "1" if record.error else "0"
    return row


_FIELD_GETTERS: dict[str, Callable[[OfflineRecord], Any]] = {
    "ID": lambda r: r.id,
    "TIMESTAMP_X": lambda r: r.timestamp,
    "EVENT_NAME": lambda r: r.event,
    "MESSAGE_ID": lambda r: r.message_id,
    "PROCESS_ID": lambda r: r.process_id,
    "ERROR": lambda r: 1 if r.error else 0,
}


def _matches(record: OfflineRecord, filter_: dict[str, Any]) -> bool:
    for key, expected in filter_.items():
        op = next((p for p in (">=", "<=", "!=", ">", "<", "=", "!") if key.startswith(p)), "")
        getter = _FIELD_GETTERS.get(key[len(op) :].upper())
        if getter is None:
            continue
        actual = getter(record)
        try:
            want: Any = type(actual)(expected)
        except (TypeError, ValueError):
            want = expected
        ok = {
            "": actual == want,
            "=": actual == want,
            "!": actual != want,
            "!=": actual != want,
            ">": actual > want,
            ">=": actual >= want,
            "<": actual < want,
            "<=": actual <= want,
        }[op]
        if not ok:
            return False
    return True


def _select(ctx: CallContext, default_order: str) -> list[OfflineRecord]:
    connector = str(ctx.param("auth_connector") or "")
    filter_ = as_mapping(ctx.param("filter")) or {}
    order = as_mapping(ctx.param("order")) or {default_order: "ASC"}
    rows = [r for r in ctx.portal.offline if r.connector == connector and _matches(r, filter_)]
    for field, direction in reversed(list(order.items())):
        getter = _FIELD_GETTERS.get(str(field).upper())
        if getter is not None:
            rows.sort(key=getter, reverse=str(direction).upper() == "DESC")
    return rows


@method("event.offline.get")
def offline_get(ctx: CallContext) -> MethodResult:
    _require_admin(ctx)
    clear = truthy(ctx.param("clear", 1))
    want_errors = truthy(ctx.param("error", 0))
    process_id = str(ctx.param("process_id") or "")
    try:
        limit = max(1, int(ctx.param("limit") or PAGE_SIZE))
    except (TypeError, ValueError):
        limit = PAGE_SIZE
    rows = _select(ctx, "TIMESTAMP_X")
    if process_id:
        rows = [r for r in rows if r.process_id == process_id]
    else:
        # Reserved records are hidden from other pullers, so parallel calls get disjoint sets.
        rows = [r for r in rows if not r.process_id and r.error == want_errors]
    rows = rows[:limit]
    if clear:
        ctx.portal.offline = [r for r in ctx.portal.offline if r not in rows]
        return MethodResult({"process_id": None, "events": [_row(r, False) for r in rows]})
    process_id = process_id or secrets.token_hex(16)
    for record in rows:
        record.process_id = process_id
    return MethodResult({"process_id": process_id, "events": [_row(r, False) for r in rows]})


@method("event.offline.clear")
def offline_clear(ctx: CallContext) -> MethodResult:
    _require_admin(ctx)
    process_id = str(ctx.param("process_id") or "")
    if not process_id:
        raise RestError("ERROR_ARGUMENT", "Argument 'process_id' is null or empty", 400)
    ids = {str(i) for i in as_list(ctx.param("id"))}
    message_ids = {str(i) for i in as_list(ctx.param("message_id"))}

    def cleared(r: OfflineRecord) -> bool:
        if r.process_id != process_id:
            return False
        if ids:
            return str(r.id) in ids
        return not message_ids or r.message_id in message_ids

    ctx.portal.offline = [r for r in ctx.portal.offline if not cleared(r)]
    return MethodResult(True)


@method("event.offline.error")
def offline_error(ctx: CallContext) -> MethodResult:
    _require_admin(ctx)
    process_id = str(ctx.param("process_id") or "")
    if not process_id:
        raise RestError("ERROR_ARGUMENT", "Argument 'process_id' is null or empty", 400)
    message_ids = {str(i) for i in as_list(ctx.param("message_id"))}
    for record in ctx.portal.offline:
        if record.process_id == process_id and record.message_id in message_ids:
            record.error = True
            record.process_id = ""
    return MethodResult(True)


@method("event.offline.list")
def offline_list(ctx: CallContext) -> MethodResult:
    _require_admin(ctx)
    rows = _select(ctx, "ID")
    try:
        start = max(0, int(ctx.param("start") or 0))
    except (TypeError, ValueError):
        start = 0
    page = rows[start : start + PAGE_SIZE]
    nxt = start + PAGE_SIZE if start + PAGE_SIZE < len(rows) else None
    return MethodResult([_row(r, True) for r in page], total=len(rows), next=nxt)
