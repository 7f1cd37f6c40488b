"""im and telephony methods (minimal): enough to tell a cloud portal from a box without telephony."""

from __future__ import annotations

import secrets
from typing import Any

from b24sim.registry import CallContext, MethodResult, RestError, method


def _required(ctx: CallContext, *names: str) -> list[Any]:
    values = [ctx.param(n) for n in names]
    missing = [n for n, v in zip(names, values, strict=True) if v in (None, "")]
    if missing:
        raise RestError("ERROR_ARGUMENT", f"Argument '{missing[0]}' is null or empty", 400)
    return values


def _notify(ctx: CallContext, user_key: str, kind: str) -> MethodResult:
    user, message = _required(ctx, user_key, "message")
    ctx.portal.notifications.append({"to": str(user), "message": str(message), "kind": kind})
    return MethodResult(len(ctx.portal.notifications))


@method("im.notify")
def im_notify(ctx: CallContext) -> MethodResult:
    return _notify(ctx, "to", str(ctx.param("type") or "USER").lower())


@method("im.notify.system.add")
def im_notify_system(ctx: CallContext) -> MethodResult:
    return _notify(ctx, "user_id", "system")


@method("im.notify.personal.add")
def im_notify_personal(ctx: CallContext) -> MethodResult:
    return _notify(ctx, "user_id", "personal")


@method("telephony.externalcall.register")
def externalcall_register(ctx: CallContext) -> MethodResult:
    if ctx.param("user_id") in (None, "") and ctx.param("user_phone_inner") in (None, ""):
        raise RestError("ERROR_ARGUMENT", "Argument 'USER_ID' is null or empty", 400)
    phone, call_type = _required(ctx, "phone_number", "type")
    call_id = f"externalCall.{secrets.token_hex(16)}.{int(ctx.sim.clock.now())}"
    ctx.portal.external_calls[call_id] = {
        "PHONE_NUMBER": str(phone),
        "TYPE": str(call_type),
        "USER_ID": str(ctx.param("user_id") or ctx.user_id),
    }
    return MethodResult(
        {
            "CALL_ID": call_id,
            "CRM_CREATED_LEAD": None,
            "CRM_CREATED_ENTITIES": [],
            "CRM_ENTITY_TYPE": None,
            "CRM_ENTITY_ID": None,
        }
    )


@method("telephony.externalcall.finish")
def externalcall_finish(ctx: CallContext) -> MethodResult:
    (call_id,) = _required(ctx, "call_id")
    call = ctx.portal.external_calls.pop(str(call_id), None)
    if call is None:
        raise RestError("ERROR_NOT_FOUND", "Call is not found or finished", 400)
    duration = int(str(ctx.param("duration") or 0) or 0)
    return MethodResult(
        {
            "CALL_ID": str(call_id),
            "EXTERNAL_CALL_ID": None,
            "PORTAL_USER_ID": int(call["USER_ID"]),
            "PHONE_NUMBER": call["PHONE_NUMBER"],
            "PORTAL_NUMBER": "",
            "INCOMING": call["TYPE"],
            "CALL_DURATION": duration,
            "CALL_STATUS": 1,
            "CALL_FAILED_CODE": str(ctx.param("status_code") or "200"),
            "CALL_FAILED_REASON": "",
            "COMMENT": None,
            "CRM_ENTITY_TYPE": None,
            "CRM_ENTITY_ID": None,
            "ID": len(ctx.portal.external_calls) + 1,
        }
    )


@method("telephony.externalcall.show", "telephony.externalcall.hide")
def externalcall_card(ctx: CallContext) -> MethodResult:
    _required(ctx, "call_id")
    return MethodResult(True)
