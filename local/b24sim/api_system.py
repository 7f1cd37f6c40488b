"""System methods: methods, method.get, scope, app.info, server.time, profile, user.admin, user.current."""

from __future__ import annotations

from b24sim.catalog import METHODS
from b24sim.entities import iso
from b24sim.registry import CallContext, MethodResult, RestError, method, truthy


@method("methods")
def methods(ctx: CallContext) -> MethodResult:
    """No parameters: what the app may call; ``full``: everything here; ``scope``: one scope
    (empty ``scope`` = the common methods)."""
    names = ctx.portal.method_names()
    if ctx.has_param("scope"):
        wanted = str(ctx.param("scope") or "")
        wanted = "" if wanted == "basic" else wanted
        return MethodResult([n for n in names if (METHODS[n].scope or "") == wanted])
    if truthy(ctx.param("full", False)):
        return MethodResult(names)
    granted = ctx.granted
    return MethodResult([n for n in names if ctx.portal.scope_allows(METHODS[n].scope, granted)])


@method("method.get")
def method_get(ctx: CallContext) -> MethodResult:
    name = str(ctx.param("name") or "").strip().lower()
    existing = bool(name) and ctx.portal.has_method(name)
    available = existing and ctx.portal.scope_allows(METHODS[name].scope, ctx.granted)
    return MethodResult({"isExisting": existing, "isAvailable": available})


@method("scope")
def scope(ctx: CallContext) -> MethodResult:
    if truthy(ctx.param("full", False)):
        return MethodResult(ctx.portal.scopes())
    return MethodResult(ctx.granted)


@method("server.time")
def server_time(ctx: CallContext) -> MethodResult:
    return MethodResult(iso(ctx.sim.clock.now()))


@method("app.info")
def app_info(ctx: CallContext) -> MethodResult:
    app = ctx.portal.app
    if app is None:
        raise RestError("ACCESS_DENIED", "Access denied! Application context required", 400)
    profile = ctx.portal.profile_info
    lang = ctx.portal.language
    return MethodResult(
        {
            "ID": app.app_id,
            "CODE": app.code,
            "VERSION": app.version,
            "STATUS": app.status,
            "INSTALLED": app.installed,
            "PAYMENT_EXPIRED": "Y" if ctx.portal.payment_required else "N",
            "DAYS": None,
            "LANGUAGE_ID": lang,
            "LICENSE": f"{lang}_{profile.license_type}",
            "LICENSE_TYPE": profile.license_type,
            "LICENSE_FAMILY": profile.license_family,
        }
    )


@method("profile")
def profile(ctx: CallContext) -> MethodResult:
    user = ctx.portal.users.get(ctx.user_id)
    return MethodResult(
        {
            "ID": str(ctx.user_id),
            "ADMIN": bool(user and user.admin),
            "NAME": user.name if user else "",
            "LAST_NAME": user.last_name if user else "",
            "PERSONAL_GENDER": "",
            "TIME_ZONE": "",
        }
    )


@method("user.admin")
def user_admin(ctx: CallContext) -> MethodResult:
    """api-reference/common/users/user-admin.md: whether the calling user may manage the app."""
    return MethodResult(ctx.portal.is_admin(ctx.user_id))


@method("user.current")
def user_current(ctx: CallContext) -> MethodResult:
    user = ctx.portal.users.get(ctx.user_id)
    return MethodResult(
        {
            "ID": str(ctx.user_id),
            "ACTIVE": True,
            "NAME": user.name if user else "",
            "LAST_NAME": user.last_name if user else "",
            "EMAIL": f"user{ctx.user_id}@{ctx.portal.domain}",
            "IS_ONLINE": "Y",
            "PERSONAL_GENDER": "",
            "WORK_POSITION": "",
            "UF_DEPARTMENT": [1],
        }
    )
