"""The CRUD + list methods of every kind of object (b24sim.entities): ``crm.<entity>.*`` and
``tasks.task.*``, registered from the one table of specs. Each change fires its event, as a change
through REST does on a portal."""

from __future__ import annotations

from typing import Any

from b24sim.crm import PAGE_SIZE, EntityStore, fields_description
from b24sim.entities import SPECS, EntitySpec, camel
from b24sim.registry import CallContext, MethodResult, RestError, as_list, as_mapping, crm_error, method


def _error(spec: EntitySpec, description: str) -> RestError:
    if spec.camel:  # tasks.task.*: numeric codes (api-reference/tasks/tasks-task-get.md)
        return RestError("100", description, 400)
    return crm_error(description)


def _object_id(ctx: CallContext, spec: EntitySpec) -> int:
    raw = ctx.param(spec.id_param)
    try:
        object_id = int(str(raw))
    except (TypeError, ValueError):
        object_id = 0
    if object_id <= 0:
        if spec.camel:
            raise RestError("0", "wrong task id", 400)
        raise crm_error("ID is not defined or invalid.")
    return object_id


def _fields(ctx: CallContext, spec: EntitySpec) -> dict[str, Any]:
    fields = as_mapping(ctx.param("fields", {}))
    if fields is None:
        raise _error(spec, "Parameter 'fields' must be array.")
    if ctx.has_param("params") and as_mapping(ctx.param("params")) is None:
        raise _error(spec, "Parameter 'params' must be array.")
    return fields


def _row(spec: EntitySpec, item: dict[str, Any]) -> dict[str, Any]:
    return {camel(k): v for k, v in item.items()} if spec.camel else item


def _one(spec: EntitySpec, value: Any) -> Any:
    return {spec.wrap_one: value} if spec.wrap_one else value


def _fetch(ctx: CallContext, spec: EntitySpec) -> dict[str, Any]:
    object_id = _object_id(ctx, spec)
    if spec.kind == "crm.deal" and object_id in ctx.portal.poison_deals:
        raise RestError("INTERNAL_SERVER_ERROR", "Internal error (simulated, this deal only)", 500)
    item = ctx.portal.entities[spec.kind].get(object_id)
    if item is None:
        raise _error(spec, "Task not found or not accessible" if spec.camel else "Not found")
    return item


def _register(spec: EntitySpec) -> None:
    def store(ctx: CallContext) -> EntityStore:
        return ctx.portal.entities[spec.kind]

    def now(ctx: CallContext) -> float:
        return ctx.sim.clock.now()

    def add(ctx: CallContext) -> MethodResult:
        object_id = store(ctx).add(_fields(ctx, spec), ctx.user_id, now(ctx))
        ctx.fire(spec.add, spec.event_data(spec.add, object_id))
        return MethodResult(
            _one(spec, _row(spec, store(ctx).get(object_id) or {})) if spec.camel else object_id
        )

    def get(ctx: CallContext) -> MethodResult:
        return MethodResult(_one(spec, _row(spec, _fetch(ctx, spec))))

    def update(ctx: CallContext) -> MethodResult:
        object_id = _object_id(ctx, spec)
        if not store(ctx).update(object_id, _fields(ctx, spec), ctx.user_id, now(ctx)):
            raise _error(spec, "Task not found or not accessible" if spec.camel else "Not found")
        ctx.fire(spec.update, spec.event_data(spec.update, object_id))
        return MethodResult(_one(spec, _row(spec, store(ctx).get(object_id) or {})) if spec.camel else True)

    def delete(ctx: CallContext) -> MethodResult:
        object_id = _object_id(ctx, spec)
        if not store(ctx).delete(object_id):
            raise _error(spec, "Task not found or not accessible" if spec.camel else "Not found")
        ctx.fire(spec.delete, spec.event_data(spec.delete, object_id))
        return MethodResult(_one(spec, True))

    def listing(ctx: CallContext) -> MethodResult:
        filter_ = as_mapping(ctx.param("filter", {}))
        if filter_ is None:
            raise _error(spec, "Parameter 'filter' must be array.")
        order = as_mapping(ctx.param("order", {}))
        if order is None:
            raise _error(spec, "Parameter 'order' must be array.")
        select = [str(s) for s in as_list(ctx.param("select"))]
        try:
            start = int(str(ctx.param("start", 0) or 0))
        except ValueError:
            start = 0
        rows = [_row(spec, r) for r in store(ctx).query(filter_, order, select)]

        def many(page: list[dict[str, Any]]) -> Any:
            return {spec.wrap_many: page} if spec.wrap_many else page

        if start < 0:
            # start=-1: no counting, no "next" - the first page only (settings/performance/huge-data.md).
            return MethodResult(many(rows[:PAGE_SIZE]), total=0)
        page = rows[start : start + PAGE_SIZE]
        nxt = start + PAGE_SIZE if start + PAGE_SIZE < len(rows) else None
        return MethodResult(many(page), total=len(rows), next=nxt)

    for action, handler in (
        ("add", add),
        ("get", get),
        ("update", update),
        ("delete", delete),
        ("list", listing),
    ):
        method(f"{spec.kind}.{action}")(handler)
    if not spec.camel:
        method(f"{spec.kind}.fields")(lambda ctx: MethodResult(fields_description(spec)))


for _spec in SPECS.values():
    _register(_spec)
