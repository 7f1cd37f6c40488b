"""Widget placements (api-reference/widgets/placement-*.md) and ``user.get``.

``placement.list`` answers the codes the app may bind here: what the portal's modules show and the
app's scopes allow (a CRM placement needs ``crm``). Binding needs an administrator and the
application context (a webhook gets WRONG_AUTH_TYPE, as for every app-only method).
"""

from __future__ import annotations

from typing import Any

from b24sim.registry import CallContext, MethodResult, RestError, as_mapping, method


def _require_admin(ctx: CallContext) -> None:
    if ctx.portal.app is None:
        raise RestError("WRONG_AUTH_TYPE", "Current authorization type is denied for this method", 403)
    if not ctx.portal.is_admin(ctx.user_id):
        raise RestError("ACCESS_DENIED", "Access denied! Administrator access rights required", 403)


def _argument(ctx: CallContext, name: str) -> str:
    value = str(ctx.param(name) or "").strip()
    if not value:
        raise RestError("ERROR_ARGUMENT", f"Argument '{name}' is null or empty", 400)
    return value


@method("placement.list")
def placement_list(ctx: CallContext) -> MethodResult:
    return MethodResult(ctx.portal.placement_names(ctx.granted))


@method("placement.get")
def placement_get(ctx: CallContext) -> MethodResult:
    return MethodResult([dict(b) for b in ctx.portal.placements])


@method("placement.bind")
def placement_bind(ctx: CallContext) -> MethodResult:
    _require_admin(ctx)
    code = _argument(ctx, "PLACEMENT").upper()
    handler = _argument(ctx, "HANDLER")
    if code not in ctx.portal.placement_names(ctx.granted):
        raise RestError("ERROR_PLACEMENT_NOT_FOUND", "Placement not found", 400)
    if ctx.param("USER_ID") not in (None, "", 0, "0") and code != "PAGE_BACKGROUND_WORKER":
        raise RestError("ERROR_PLACEMENT_USER_MODE", "User mode is not available", 400)
    single = code in ("PAGE_BACKGROUND_WORKER", "REST_APP_URI")
    if single and any(b["placement"] == code for b in ctx.portal.placements):
        raise RestError("ERROR_PLACEMENT_MAX_COUNT", "Placement max count exceeded", 400)
    lang_all: Any = as_mapping(ctx.param("LANG_ALL")) or {}
    ctx.portal.placements.append(
        {
            "placement": code,
            "userId": 0,
            "handler": handler,
            "options": as_mapping(ctx.param("OPTIONS")) or [],
            "title": str(ctx.param("TITLE") or ""),
            "description": str(ctx.param("DESCRIPTION") or ""),
            "langAll": lang_all,
        }
    )
    return MethodResult(True)


@method("placement.unbind")
def placement_unbind(ctx: CallContext) -> MethodResult:
    """Without HANDLER every handler of the placement goes; ``count`` counts each found record once
    and each removal once more, as the docs say."""
    _require_admin(ctx)
    code = _argument(ctx, "PLACEMENT").upper()
    handler = str(ctx.param("HANDLER") or "")
    gone = [
        b
        for b in ctx.portal.placements
        if b["placement"] == code and (not handler or b["handler"] == handler)
    ]
    ctx.portal.placements = [b for b in ctx.portal.placements if b not in gone]
    return MethodResult({"count": 2 * len(gone)})


@method("user.get")
def user_get(ctx: CallContext) -> MethodResult:
    users = [
        {"ID": str(u.id), "ACTIVE": True, "NAME": u.name, "LAST_NAME": u.last_name}
        for u in sorted(ctx.portal.users.values(), key=lambda u: u.id)
    ]
    return MethodResult(users, total=len(users))
