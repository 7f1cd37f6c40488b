"""A small JSON control API under ``/_sim/`` so a person running the local stack can drive the simulator.

It plays the portal UI (deal changes that fire events), installs the app, flips knobs and shows what the
queue delivered. It never returns token values or payloads.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from b24sim.entities import SPECS

if TYPE_CHECKING:
    from b24sim.simulator import Simulator

Reply = tuple[int, Any]

_KNOBS = (
    "queue_blocked",
    "payment_required",
    "deleted",
    "operating_limit_s",
    "rest_latency_s",
    "failing_methods",
)


def _error(status: int, message: str) -> Reply:
    return status, {"error": message}


def _json(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("a JSON object is expected")
    return data


def _fields(data: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    fields = data.get("fields", data)
    user_id = data.get("user_id", 1) if "fields" in data else 1
    return (fields if isinstance(fields, dict) else {}), (int(user_id) if user_id is not None else None)


def handle(sim: Simulator, verb: str, route: str, body: bytes) -> Reply:
    try:
        data = _json(body) if verb in ("POST", "PUT") else {}
    except ValueError as exc:
        return _error(400, f"bad JSON body: {exc}")
    parts = route.split("/") if route else []
    try:
        return _dispatch(sim, verb, parts, data)
    except KeyError as exc:
        return _error(404, str(exc).strip("'\""))
    except (RuntimeError, ValueError, TypeError) as exc:
        return _error(400, str(exc))


def _dispatch(sim: Simulator, verb: str, parts: list[str], data: dict[str, Any]) -> Reply:
    match verb, parts:
        case "GET", ["portals"]:
            return 200, [p.summary() for p in sim.portals.values()]
        case "POST", ["portals"]:
            portal = sim.add_portal(
                str(data["domain"]),
                profile=str(data.get("profile", "cloud")),
                member_id=data.get("member_id"),
                rate=(float(data.get("rate", (50, 2))[0]), float(data.get("rate", (50, 2))[1])),
                language=str(data.get("language", "en")),
                queue_blocked=bool(data.get("queue_blocked", False)),
            )
            return 201, portal.summary()
        case "GET", ["portals", domain]:
            return 200, sim.portal(domain).summary()
        case "POST", ["portals", domain, "settings"]:
            portal = sim.portal(domain)
            with sim.lock:
                for knob in _KNOBS:
                    if knob in data:
                        setattr(portal, knob, data[knob])
                if "rate" in data:
                    portal.rate = (float(data["rate"][0]), float(data["rate"][1]))
            return 200, portal.summary()
        case "POST", ["portals", domain, "modules", module]:
            sim.portal(domain).enable_module(module)
            return 200, sim.portal(domain).summary()
        case "DELETE", ["portals", domain, "modules", module]:
            sim.portal(domain).disable_module(module)
            return 200, sim.portal(domain).summary()
        case "POST", ["portals", domain, "deals"]:  # the first kind's own route, kept for scripts
            fields, user_id = _fields(data)
            return 201, {"id": sim.portal(domain).ui_add("crm.deal", fields, user_id=user_id)}
        case "POST", ["portals", domain, "deals", deal_id]:
            fields, user_id = _fields(data)
            sim.portal(domain).ui_update("crm.deal", int(deal_id), fields, user_id=user_id)
            return 200, {"ok": True}
        case "DELETE", ["portals", domain, "deals", deal_id]:
            sim.portal(domain).ui_delete("crm.deal", int(deal_id))
            return 200, {"ok": True}
        case "POST", ["portals", domain, "objects", kind] if kind in SPECS:
            fields, user_id = _fields(data)
            return 201, {"id": sim.portal(domain).ui_add(kind, fields, user_id=user_id)}
        case "POST", ["portals", domain, "objects", kind, object_id] if kind in SPECS:
            fields, user_id = _fields(data)
            sim.portal(domain).ui_update(kind, int(object_id), fields, user_id=user_id)
            return 200, {"ok": True}
        case "DELETE", ["portals", domain, "objects", kind, object_id] if kind in SPECS:
            sim.portal(domain).ui_delete(kind, int(object_id))
            return 200, {"ok": True}
        case "POST", ["portals", domain, "install"]:
            response = sim.install(
                domain, str(data["handler_url"]), mode=str(data.get("mode", "ui")), scope=data.get("scope")
            )
            return 200, {"handler_status": response.status_code if response is not None else None}
        case "POST", ["portals", domain, "update"]:
            response = sim.update_app(domain, data.get("handler_url"))
            return 200, {"handler_status": response.status_code if response is not None else None}
        case "POST", ["portals", domain, "uninstall"]:
            response = sim.uninstall(domain, data.get("handler_url"), clean=bool(data.get("clean", True)))
            return 200, {"handler_status": response.status_code if response is not None else None}
        case "POST", ["portals", domain, "misbehave"]:
            from b24sim.misbehave import Misbehaviour

            sim.portal(domain).misbehave = Misbehaviour(
                hostile=bool(data.get("hostile", False)),
                delay_s=float(data.get("delay_s", 0)),
                drip_s=float(data.get("drip_s", 0)),
                huge_bytes=int(data.get("huge_bytes", 0)),
            )
            return 200, {"ok": True}
        case "GET", ["deliveries"]:
            return 200, [d.summary() for d in list(sim.deliveries)]
        case "GET", ["calls"]:
            return 200, [c.__dict__ for c in list(sim.calls)]
        case "GET", ["oauth", "requests"]:
            return 200, [r.__dict__ for r in list(sim.oauth.requests)]
        case "POST", ["oauth"]:
            if "down" in data:
                sim.oauth.down = bool(data["down"])
            if "latency_s" in data:
                sim.oauth.latency_s = float(data["latency_s"])
            return 200, {"down": sim.oauth.down, "latency_s": sim.oauth.latency_s}
        case "POST", ["clock", "advance"]:
            sim.clock.advance(float(data.get("seconds", 0)))
            return 200, {"offset": sim.clock.offset}
        case "POST", ["expire-tokens"]:
            return 200, {"expired": sim.expire_access_tokens(data.get("domain"))}
    return _error(404, "unknown control route")
