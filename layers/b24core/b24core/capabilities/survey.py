"""Asking a portal what it has: the one batch request of the capability check, read into a survey.

The method list, the event list, the granted and all scopes, app.info, server time, the app's event and
placement bindings, the offered placements and the calling user's profile come in one ``batch``; only
when the method list is unavailable does ``method.get`` ask for each needed method.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from b24core.tokens.client import PortalClient


#: The check: every sub-call of the one batch request, by result key.
SURVEY: dict[str, tuple[str, dict[str, Any]]] = {
    "scope": ("scope", {}),
    "portal_scopes": ("scope", {"full": "true"}),
    "methods": ("methods", {}),
    "events": ("events", {}),
    "app_info": ("app.info", {}),
    "server_time": ("server.time", {}),
    "bound": ("event.get", {}),
    "profile": ("profile", {}),
    "placements": ("placement.list", {}),
    "bound_placements": ("placement.get", {}),
}


#: The same check for a portal connected by an incoming webhook: application-only methods (``events``,
#: ``event.*``, ``app.info``) are refused to webhooks, so they are not asked (b24core.trust.webhooks).
WEBHOOK_SURVEY = {
    k: v
    for k, v in SURVEY.items()
    if k not in ("events", "app_info", "bound", "placements", "bound_placements")
}


_CLOUD_DOMAIN = re.compile(r"\.bitrix24\.[a-z]{2,3}(\.[a-z]{2})?$|\.bitrix24\.site$", re.IGNORECASE)


#: Plan families only the cloud sells (api-reference/common/system/app-info.md: LICENSE examples).
#: "ent" is left out on purpose: self-hosted Bitrix24 has an Enterprise edition too.
_CLOUD_FAMILIES = frozenset({"project", "basic", "std", "pro", "demo", "nfr", "start", "team", "company"})


_BOX_MARKERS = ("selfhosted", "self-hosted", "box", "onpremise")


def error_code(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("error") or "ERROR")
    return "ERROR"


def _names(value: Any) -> set[str] | None:
    if isinstance(value, list):
        return {str(v) for v in value}
    if isinstance(value, dict):
        return {str(k) for k in value}
    return None


@dataclass
class PortalSurvey:
    """What the one batch request told us; ``None`` = could not be learned."""

    scopes: set[str] | None
    #: Every scope the portal has (``scope`` with ``full``): a scope missing here means a missing module.
    portal_scopes: set[str] | None
    methods: set[str] | None
    events: set[str] | None
    app_info: dict[str, Any] | None
    server_time: str | None
    bound: list[tuple[str, str]] | None
    profile: dict[str, Any] | None
    errors: dict[str, str] = field(default_factory=dict)
    #: ``method.get`` answers (name -> {"exists", "available"}) when the method list was unavailable.
    method_checks: dict[str, dict[str, bool]] | None = None
    #: Placement codes the app may bind here (``placement.list``), and its bound (code, handler) pairs.
    placements: set[str] | None = None
    bound_placements: list[tuple[str, str]] | None = None

    @property
    def method_source(self) -> str:
        if self.methods is not None:
            return "methods"
        return "method.get" if self.method_checks is not None else "unavailable"


def survey_portal(client: PortalClient, spec: dict[str, tuple[str, dict[str, Any]]] = SURVEY) -> PortalSurvey:
    """The check's one HTTP request. Raises when the request as a whole fails."""
    answer = client.batch(spec)
    results: dict[str, Any] = answer["result"]
    errors = {key: error_code(value) for key, value in answer["error"].items()}
    for key in spec:
        if key not in results and key not in errors:
            errors[key] = "NO_ANSWER"  # the portal dropped the sub-call (e.g. a halted batch)
    methods = _names(results.get("methods")) if "methods" in results else None
    events = _names(results.get("events")) if "events" in results else None
    bound_raw = results.get("bound")
    bound = None
    if isinstance(bound_raw, list):
        bound = [
            (str(b.get("event", "")).upper(), str(b.get("handler", "")))
            for b in bound_raw
            if isinstance(b, dict) and str(b.get("offline", "0")) in ("0", "", "False")
        ]
    return PortalSurvey(
        scopes=_names(results.get("scope")) if "scope" in results else None,
        portal_scopes=_names(results.get("portal_scopes")) if "portal_scopes" in results else None,
        methods={m.lower() for m in methods} if methods is not None else None,
        events={e.upper() for e in events} if events is not None else None,
        app_info=results["app_info"] if isinstance(results.get("app_info"), dict) else None,
        server_time=str(results["server_time"]) if results.get("server_time") else None,
        bound=bound,
        profile=results["profile"] if isinstance(results.get("profile"), dict) else None,
        errors=errors,
        placements=_names(results.get("placements")) if "placements" in results else None,
        bound_placements=bound_pairs(results.get("bound_placements")),
    )


def survey_methods(client: PortalClient, names: Iterable[str]) -> dict[str, dict[str, bool]]:
    """The fallback: ``method.get`` for each needed method (one batch request per 50)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    answer = client.batch({f"m{i}": ("method.get", {"name": n}) for i, n in enumerate(wanted)})
    checks: dict[str, dict[str, bool]] = {}
    for i, name in enumerate(wanted):
        value = answer["result"].get(f"m{i}")
        if isinstance(value, dict):
            checks[name] = {
                "exists": bool(value.get("isExisting")),
                "available": bool(value.get("isAvailable")),
            }
    return checks


def portal_kind(domain: str, app_info: dict[str, Any] | None) -> dict[str, str]:
    """Cloud or box, and what told us. The platform has no field saying it, so signals are ranked:
    a self-hosted licence in app.info, a Bitrix24 cloud domain, a cloud-only plan family, and last
    a domain that is not a Bitrix24 cloud domain."""
    host = domain.split(":")[0].lower()
    family = str((app_info or {}).get("LICENSE_FAMILY") or "").lower()
    license_ = str((app_info or {}).get("LICENSE") or "").lower()
    if any(m in family or m in license_ for m in _BOX_MARKERS):
        return {"kind": "box", "told_by": f"app.info licence {family or license_!r} is a self-hosted one"}
    if _CLOUD_DOMAIN.search(host):
        return {"kind": "cloud", "told_by": f"the domain {host} is a Bitrix24 cloud domain"}
    if family in _CLOUD_FAMILIES:
        return {"kind": "cloud", "told_by": f"app.info plan family {family!r} is sold only in the cloud"}
    if host:
        return {"kind": "box", "told_by": f"the domain {host} is not a Bitrix24 cloud domain"}
    return {"kind": "unknown", "told_by": "no signal"}


def plan_info(app_info: dict[str, Any] | None) -> dict[str, Any]:
    if not app_info:
        return {}
    keys = ("LICENSE", "LICENSE_TYPE", "LICENSE_FAMILY", "STATUS", "PAYMENT_EXPIRED", "DAYS", "VERSION")
    plan = {k.lower(): app_info.get(k) for k in keys if k in app_info}
    if "INSTALLED" in app_info:
        plan["install_finished"] = bool(app_info.get("INSTALLED"))
    return plan


def clock_skew_s(server_time: str | None, now: float) -> int | None:
    if not server_time:
        return None
    try:
        return round(datetime.fromisoformat(server_time).timestamp() - now)
    except ValueError:
        return None


def admin_user(profile: dict[str, Any] | None) -> str:
    """The id of the calling user when the portal says it is an administrator."""
    if profile and profile.get("ADMIN") in (True, "Y", "1", 1, "true") and profile.get("ID"):
        return str(profile["ID"])
    return ""


def bound_pairs(value: Any) -> list[tuple[str, str]] | None:
    """``placement.get``'s answer as (code, handler) pairs; None when it gave none."""
    if not isinstance(value, list):
        return None
    return [
        (str(b.get("placement", "")).upper(), str(b.get("handler", ""))) for b in value if isinstance(b, dict)
    ]
