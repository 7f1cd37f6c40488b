"""crm.deal.* methods. Each change fires its ONCRMDEAL* event, as a change through REST does on a portal."""

from __future__ import annotations

from typing import Any

from b24sim.crm import PAGE_SIZE, fields_description
from b24sim.registry import CallContext, MethodResult, RestError, as_list, as_mapping, crm_error, method


def _deal_id(ctx: CallContext) -> int:
    raw = ctx.param("id")
    try:
        deal_id = int(str(raw))
    except (TypeError, ValueError):
        deal_id = 0
    if deal_id <= 0:
        raise crm_error("ID is not defined or invalid.")
    return deal_id


def _fields(ctx: CallContext) -> dict[str, Any]:
    fields = as_mapping(ctx.param("fields", {}))
    if fields is None:
        raise crm_error("Parameter 'fields' must be array.")
    if ctx.has_param("params") and as_mapping(ctx.param("params")) is None:
        raise crm_error("Parameter 'params' must be array.")
    return fields


def _now(ctx: CallContext) -> float:
    return ctx.sim.clock.now()


@method("crm.deal.fields")
def deal_fields(ctx: CallContext) -> MethodResult:
    return MethodResult(fields_description())


@method("crm.deal.add")
def deal_add(ctx: CallContext) -> MethodResult:
    deal_id = ctx.portal.deals.add(_fields(ctx), ctx.user_id, _now(ctx))
    ctx.fire("ONCRMDEALADD", {"FIELDS": {"ID": str(deal_id)}})
    return MethodResult(deal_id)


@method("crm.deal.get")
def deal_get(ctx: CallContext) -> MethodResult:
    if _deal_id(ctx) in ctx.portal.poison_deals:
        raise RestError("INTERNAL_SERVER_ERROR", "Internal error (simulated, this deal only)", 500)
    deal = ctx.portal.deals.get(_deal_id(ctx))
    if deal is None:
        raise crm_error("Not found")
    return MethodResult(deal)


@method("crm.deal.update")
def deal_update(ctx: CallContext) -> MethodResult:
    deal_id = _deal_id(ctx)
    fields = _fields(ctx)
    if not ctx.portal.deals.update(deal_id, fields, ctx.user_id, _now(ctx)):
        raise crm_error("Not found")
    ctx.fire("ONCRMDEALUPDATE", {"FIELDS": {"ID": str(deal_id)}})
    return MethodResult(True)


@method("crm.deal.delete")
def deal_delete(ctx: CallContext) -> MethodResult:
    deal_id = _deal_id(ctx)
    if not ctx.portal.deals.delete(deal_id):
        raise crm_error("Not found")
    ctx.fire("ONCRMDEALDELETE", {"FIELDS": {"ID": str(deal_id)}})
    return MethodResult(True)


@method("crm.deal.list")
def deal_list(ctx: CallContext) -> MethodResult:
    filter_ = as_mapping(ctx.param("filter", {}))
    if filter_ is None:
        raise crm_error("Parameter 'filter' must be array.")
    order = as_mapping(ctx.param("order", {}))
    if order is None:
        raise crm_error("Parameter 'order' must be array.")
    select = [str(s) for s in as_list(ctx.param("select"))]
    try:
        start = int(str(ctx.param("start", 0) or 0))
    except ValueError:
        start = 0
    rows = ctx.portal.deals.query(filter_, order, select)
    if start < 0:
        # start=-1: no counting, no "next" - the first page only (settings/performance/huge-data.md).
        return MethodResult(rows[:PAGE_SIZE], total=0)
    page = rows[start : start + PAGE_SIZE]
    nxt = start + PAGE_SIZE if start + PAGE_SIZE < len(rows) else None
    return MethodResult(page, total=len(rows), next=nxt)
