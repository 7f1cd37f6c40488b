"""What THIS portal has of what the app needs, learned in one `batch` request, and event binding.

Boxes lag the cloud and may lack whole modules, so a feature is available only when every method,
event and scope it needs is there; what cannot be learned is "unknown", never "missing".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from b24core.client import PortalClient
from b24core.logs import logger
from b24core.manifest import Manifest

# Bitrix24 sends these only to handlers the app bound itself; they are how update and uninstall reach us.
LIFECYCLE_EVENTS = ("ONAPPUNINSTALL", "ONAPPUPDATE")


def _names(value: Any) -> set[str] | None:
    if isinstance(value, list):
        return {str(v) for v in value}
    if isinstance(value, dict):
        return {str(k) for k in value}
    return None


def check_portal(
    client: PortalClient, manifest: Manifest, handler_url: str, clock: Callable[[], float] = time.time
) -> dict[str, Any]:
    """Ask (one batch), decide per feature, bind the events of available features; return the report."""
    answer = client.batch(
        {
            "scope": ("scope", {}),
            "methods": ("methods", {}),
            "events": ("events", {}),
            "bound": ("event.get", {}),
            "server_time": ("server.time", {}),
        }
    )
    results, errors = answer["result"], answer["error"]
    granted = _names(results.get("scope"))
    methods = {m.lower() for m in _names(results.get("methods")) or set()} if "methods" in results else None
    events = {e.upper() for e in _names(results.get("events")) or set()} if "events" in results else None
    features: dict[str, Any] = {}
    for feature in manifest.features:
        missing_methods = sorted(
            m for m in feature.methods if methods is not None and m.lower() not in methods
        )
        missing_events = sorted(e for e in feature.events if events is not None and e not in events)
        missing_scopes = sorted(s for s in feature.scopes if granted is not None and s not in granted)
        unknown = methods is None or events is None or granted is None
        if missing_methods or missing_events or missing_scopes:
            available: bool | None = False
        else:
            available = None if unknown else True
        features[feature.name] = {
            "required": feature.required,
            "available": available,
            "missing_methods": missing_methods,
            "missing_events": missing_events,
            "missing_scopes": missing_scopes,
        }
    bound = results.get("bound") if isinstance(results.get("bound"), list) else []
    already = {
        (str(b.get("event", "")).upper(), str(b.get("handler", ""))) for b in bound if isinstance(b, dict)
    }
    to_bind = sorted(
        {e for f in manifest.features if features[f.name]["available"] is not False for e in f.events}
        | set(LIFECYCLE_EVENTS) - {e for e, h in already if h == handler_url}
    )
    bind_errors: dict[str, Any] = {}
    if to_bind:
        bind = client.batch({e: ("event.bind", {"event": e, "handler": handler_url}) for e in to_bind})
        bind_errors = {k: v for k, v in bind["error"].items()}
    bound_now = sorted({e for e, h in already if h == handler_url} | (set(to_bind) - set(bind_errors)))
    report = {
        "checked_at": int(clock()),
        "features": features,
        "bound": bound_now,
        "bind_errors": sorted(bind_errors),
        "errors": sorted(errors),
    }
    logger.info(
        "capabilities checked",
        extra={
            "action": "capability_check",
            "outcome": "ok",
            "member_id": client.portal.member_id,
            "bound": len(bound_now),
        },
    )
    return report
