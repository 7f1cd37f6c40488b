"""What THIS portal has of what the app needs, and the binding of the events it can deliver.

A box lags the cloud and may have whole modules switched off, so a feature is available only when
every method, event and scope it needs is there. The check is one ``batch`` HTTP request to the portal
(the method list, the event list, the granted scopes, app.info, server time, the app's current
bindings and the calling user's profile). Only when the method list itself is unavailable, a second
request asks ``method.get`` for each needed method. What could not be learned is "unknown", never
"missing".

Acting on the answer is a separate step: one more ``batch`` with the ``event.bind`` calls for events
not bound yet (and the admin notifications, see notifications.py) — none at all when nothing is due.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from b24core.bitrix.errors import B24Error
from b24core.capabilities.manifest import LIFECYCLE_EVENTS, Feature, Manifest
from b24core.capabilities.placements import page_url, plan_placements
from b24core.tokens.outcomes import PortalUnavailable

#: What asking a portal may fail with: a platform or transport error, or tokens no longer usable.
PortalFailure = (B24Error, PortalUnavailable)

if TYPE_CHECKING:
    from b24core.tokens.client import PortalClient


class Status(StrEnum):
    AVAILABLE = "available"
    MISSING = "missing"
    UNKNOWN = "unknown"

    @property
    def flag(self) -> bool | None:
        return {Status.AVAILABLE: True, Status.MISSING: False, Status.UNKNOWN: None}[self]


#: The check: every sub-call of the one batch request, by result key.
PROBE: dict[str, tuple[str, dict[str, Any]]] = {
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
WEBHOOK_PROBE = {
    k: v
    for k, v in PROBE.items()
    if k not in ("events", "app_info", "bound", "placements", "bound_placements")
}
NOT_FOR_WEBHOOKS = "not available to webhooks"

_CLOUD_DOMAIN = re.compile(r"\.bitrix24\.[a-z]{2,3}(\.[a-z]{2})?$|\.bitrix24\.site$", re.IGNORECASE)
#: Plan families only the cloud sells (api-reference/common/system/app-info.md: LICENSE examples).
#: "ent" is left out on purpose: self-hosted Bitrix24 has an Enterprise edition too.
_CLOUD_FAMILIES = frozenset({"project", "basic", "std", "pro", "demo", "nfr", "start", "team", "company"})
_BOX_MARKERS = ("selfhosted", "self-hosted", "box", "onpremise")


def _error_code(value: Any) -> str:
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
class Probe:
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


def probe_portal(client: PortalClient, spec: dict[str, tuple[str, dict[str, Any]]] = PROBE) -> Probe:
    """The check's one HTTP request. Raises when the request as a whole fails."""
    answer = client.batch(spec)
    results: dict[str, Any] = answer["result"]
    errors = {key: _error_code(value) for key, value in answer["error"].items()}
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
    return Probe(
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


def probe_methods(client: PortalClient, names: Iterable[str]) -> dict[str, dict[str, bool]]:
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


# ---------------------------------------------------------------- deciding per feature
def assess_feature(feature: Feature, probe: Probe) -> dict[str, Any]:
    missing_methods: list[str] = []
    unknown: list[str] = []
    for method in feature.methods:
        if probe.methods is not None:
            if method not in probe.methods:
                missing_methods.append(method)
        elif probe.method_checks is not None and method in probe.method_checks:
            if not probe.method_checks[method]["available"]:
                missing_methods.append(method)
        else:
            unknown.append(method)
    missing_events: list[str] = []
    for event in feature.events:
        if probe.events is None:
            unknown.append(event)
        elif event not in probe.events:
            missing_events.append(event)
    missing_placements: list[str] = []
    for placement in feature.placements:
        if probe.placements is None:
            unknown.append(f"placement:{placement.code}")
        elif placement.code not in probe.placements:
            missing_placements.append(placement.code)
    missing_scopes: list[str] = []
    for scope in feature.scopes:
        if probe.scopes is None:
            unknown.append(f"scope:{scope}")
        elif scope not in probe.scopes:
            missing_scopes.append(scope)
    absent = [
        *(f"method {m}" for m in missing_methods),
        *(f"event {e}" for e in missing_events),
        *(f"placement {c}" for c in missing_placements),
        *(f"scope {s}" for s in missing_scopes),
    ]
    if absent:
        status = Status.MISSING
        reason = "the portal lacks " + ", ".join(absent)
        if unknown:
            reason += "; could not check " + ", ".join(unknown)
    elif unknown:
        status = Status.UNKNOWN
        failed = sorted(
            f"{key} ({code})" for key, code in probe.errors.items() if key in ("methods", "events", "scope")
        )
        reason = "could not check " + ", ".join(unknown)
        if failed:
            reason += "; the portal failed to answer " + ", ".join(failed)
    else:
        status = Status.AVAILABLE
        reason = "every method, event and scope it needs is there"
    not_existing = [
        m
        for m in missing_methods
        if probe.method_checks is not None and not probe.method_checks.get(m, {}).get("exists", True)
    ]
    # What the admin must do differs: a scope the portal has but did not grant needs the app's
    # permissions; a scope the portal does not have at all means its module is missing.
    scopes_not_on_portal = [
        s for s in missing_scopes if probe.portal_scopes is not None and s not in probe.portal_scopes
    ]
    if probe.portal_scopes is not None and feature.scopes:
        whole_module = bool(scopes_not_on_portal)  # the portal has the module's scope: it has the module
    else:
        whole_module = (
            not missing_scopes  # a permission not granted also hides every method and event
            and bool(feature.methods or feature.events)
            and len(missing_methods) == len(feature.methods)
            and len(missing_events) == len(feature.events)
        )
    return {
        "required": feature.required,
        "status": str(status),
        "available": status.flag,
        "reason": reason,
        "missing_methods": missing_methods,
        "missing_events": missing_events,
        "missing_placements": missing_placements,
        "missing_scopes": missing_scopes,
        "unknown": unknown,
        "not_existing_methods": not_existing,
        "scopes_not_on_portal": scopes_not_on_portal,
        "module_missing": status == Status.MISSING and whole_module,
        "module": feature.module,
        "description": feature.description,
    }


def assess(manifest: Manifest, probe: Probe) -> dict[str, dict[str, Any]]:
    return {f.name: assess_feature(f, probe) for f in manifest.features}


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


# ---------------------------------------------------------------- binding
def events_to_bind(
    manifest: Manifest, features: dict[str, dict[str, Any]], probe: Probe, handler_url: str
) -> list[str]:
    """Events of features not known missing, that the portal is not known to lack, not bound yet
    to ``handler_url``; plus the lifecycle events every install needs."""
    wanted = set(LIFECYCLE_EVENTS)
    for feature in manifest.features:
        if features[feature.name]["status"] == Status.MISSING:
            continue
        wanted.update(e for e in feature.events if probe.events is None or e in probe.events)
    already = {e for e, h in (probe.bound or []) if h == handler_url}
    return sorted(wanted - already)


def bound_pairs(value: Any) -> list[tuple[str, str]] | None:
    """``placement.get``'s answer as (code, handler) pairs; None when it gave none."""
    if not isinstance(value, list):
        return None
    return [
        (str(b.get("placement", "")).upper(), str(b.get("handler", ""))) for b in value if isinstance(b, dict)
    ]


def bound_events(probe: Probe, handler_url: str) -> set[str]:
    return {e for e, h in (probe.bound or []) if h == handler_url}


def is_already_bound(error: Any) -> bool:
    """``event.bind`` of an existing binding answers ERROR_CORE "Handler already binded"."""
    return isinstance(error, dict) and "already" in str(error.get("error_description", "")).lower()


# ---------------------------------------------------------------- the whole check (no storage)
@dataclass(frozen=True)
class Notice:
    """A message to the portal's admin; ``marks`` are the feature states it reports."""

    key: str
    user_id: str
    message: str
    tag: str
    marks: dict[str, str]


#: (previous report, features now, admin user id, portal kind) -> notices to send
NoticePlanner = Callable[[dict[str, Any], dict[str, dict[str, Any]], str, str], list[Notice]]


def isolation_notice(
    previous: dict[str, Any],
    features: dict[str, dict[str, Any]],
    admin: str,
    manifest: Manifest,
    language: str = "",
) -> list[Notice]:
    """Tell the admin once why the app now works through a webhook: the portal cannot reach a cloud
    service (found while OAuth failed, so this is the first moment a message can get through)."""
    from b24core.capabilities.isolation import describe
    from b24core.capabilities.notices import notification_feature

    isolation = previous.get("isolation") or {}
    summary, advice = str(isolation.get("summary") or ""), isolation.get("advice") or []
    worded, worded_advice = describe(isolation, language)
    channel = notification_feature(manifest)
    if not (admin and advice and channel) or (features.get(channel) or {}).get("status") != Status.AVAILABLE:
        return []
    if (previous.get("notified") or {}).get("isolation") == summary:
        return []
    message = f"[b24app] {worded}. " + " ".join(worded_advice)
    return [Notice(key="isolation", user_id=admin, message=message, tag="", marks={"isolation": summary})]


def check_portal(
    client: PortalClient,
    manifest: Manifest,
    handler_url: str,
    *,
    previous: dict[str, Any] | None = None,
    plan_notices: NoticePlanner | None = None,
    fallback_admin: str = "",
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Ask (one batch; method.get only if the method list is unavailable), decide per feature, then
    bind what is due and send due notices (one more batch); return the report. Raises when the
    portal cannot be asked at all (the caller records that as unknown)."""
    now = clock()
    via_webhook = getattr(client, "webhook", None) is not None
    probe = probe_portal(client, WEBHOOK_PROBE if via_webhook else PROBE)
    if probe.methods is None:
        try:
            probe.method_checks = probe_methods(client, manifest.methods())
        except PortalFailure as exc:  # best effort: what it could not learn stays unknown
            probe.errors["method.get"] = type(exc).__name__
    features = assess(manifest, probe)
    if via_webhook:
        _events_not_for_webhooks(features)
        handler_url = ""  # event.bind is application-only: events come by outgoing webhook or polling
    previous = previous or {}
    admin = admin_user(probe.profile) or str(previous.get("admin_user_id") or "") or fallback_admin
    kind = portal_kind(client.portal.domain, probe.app_info)
    notices = plan_notices(previous, features, admin, kind["kind"]) if plan_notices else []
    if via_webhook:
        notices += isolation_notice(previous, features, admin, manifest, client.portal.language)
    to_bind = events_to_bind(manifest, features, probe, handler_url) if handler_url else []
    bound = bound_events(probe, handler_url)
    bind_errors: dict[str, str] = {}
    notified = dict(previous.get("notified") or {})
    widgets = (
        plan_placements(manifest, features, probe.placements, probe.bound_placements, page_url(handler_url))
        if handler_url
        else None
    )
    if to_bind or notices or (widgets and widgets.commands):
        commands: dict[str, tuple[str, dict[str, Any]]] = {
            f"bind_{e}": ("event.bind", {"event": e, "handler": handler_url}) for e in to_bind
        }
        if widgets:
            commands.update(widgets.commands)
        for notice in notices:
            params = {"USER_ID": notice.user_id, "MESSAGE": notice.message}
            if notice.tag:  # via a webhook a TAG needs the app's CLIENT_ID too: such notices carry none
                params["TAG"] = notice.tag
            commands[f"notify_{notice.key}"] = ("im.notify.system.add", params)
        try:
            applied = client.batch(commands)
            results, errors = applied["result"], applied["error"]
        except PortalFailure as exc:  # keep what the check learned; the next check binds again
            results, errors = {}, {k: {"error": type(exc).__name__} for k in commands}
        for event in to_bind:
            err = errors.get(f"bind_{event}")
            if f"bind_{event}" in results or is_already_bound(err):
                bound.add(event)
            else:
                bind_errors[event] = _error_code(err) if err else "NO_ANSWER"
        for notice in notices:
            if f"notify_{notice.key}" in results:
                notified.update(notice.marks)
        if widgets:
            widgets.settle(results, errors)
    methods_known = probe.methods is not None or probe.method_checks is not None
    report: dict[str, Any] = {
        "checked_at": int(now),
        "kind": kind,
        "plan": plan_info(probe.app_info),
        "portal_time": probe.server_time,
        "clock_skew_s": clock_skew_s(probe.server_time, now),
        "sources": {
            "methods": probe.method_source,
            "events": NOT_FOR_WEBHOOKS
            if via_webhook
            else "events"
            if probe.events is not None
            else "unavailable",
            "scope": "scope" if probe.scopes is not None else "unavailable",
            "complete": methods_known
            and (via_webhook or probe.events is not None)
            and probe.scopes is not None,
            "auth": "webhook" if via_webhook else "oauth",
        },
        "features": features,
        "required_ok": not any(f["required"] and f["status"] == Status.MISSING for f in features.values()),
        "bound": sorted(bound),
        "bind_errors": bind_errors,
        "placements": widgets.summary() if widgets else {},
        "errors": dict(sorted(probe.errors.items())),
        "admin_user_id": admin,
        "notified": notified,
        "events_url": handler_url,
    }
    return report


def _events_not_for_webhooks(features: dict[str, dict[str, Any]]) -> None:
    """Webhook auth cannot list events: record that per feature instead of calling them unknown."""
    for info in features.values():
        events = [u for u in info["unknown"] if not u.startswith("scope:") and u.upper() == u]
        if not events:
            continue
        info["unknown"] = [u for u in info["unknown"] if u not in events]
        info["events_not_checked"] = events
        info["events_check"] = NOT_FOR_WEBHOOKS
        if info["status"] == Status.UNKNOWN and not info["unknown"]:
            info["status"], info["available"] = str(Status.AVAILABLE), True
            info["reason"] = (
                "every method and scope it needs is there; its events are not listed to webhooks "
                "(they come by an outgoing webhook or change polling)"
            )


def unknown_report(
    manifest: Manifest, previous: dict[str, Any] | None, reason: str, now: int, handler_url: str
) -> dict[str, Any]:
    """The portal could not be asked at all: every feature unknown (never missing), the rest kept."""
    previous = previous or {}
    features = {}
    for feature in manifest.features:
        features[feature.name] = {
            "required": feature.required,
            "status": str(Status.UNKNOWN),
            "available": None,
            "reason": f"the portal did not answer the check ({reason})",
            "missing_methods": [],
            "missing_events": [],
            "missing_scopes": [],
            "unknown": [*feature.methods, *feature.events],
            "not_existing_methods": [],
            "module": feature.module,
            "description": feature.description,
        }
    return {
        **{k: v for k, v in previous.items() if k in ("kind", "plan", "admin_user_id", "notified", "bound")},
        "checked_at": now,
        "features": features,
        "required_ok": True,
        "sources": {
            "methods": "unavailable",
            "events": "unavailable",
            "scope": "unavailable",
            "complete": False,
        },
        "errors": {"batch": reason},
        "bind_errors": {},
        "events_url": handler_url or previous.get("events_url", ""),
    }


# ---------------------------------------------------------------- reading a stored report
def feature_status(capabilities: dict[str, Any], name: str) -> Status | None:
    """The stored status of a feature; ``None`` when the portal was never checked or the feature is
    not in the report."""
    features = capabilities.get("features")
    if not isinstance(features, dict) or not isinstance(features.get(name), dict):
        return None
    info = features[name]
    raw = info.get("status")
    if raw in tuple(Status):
        return Status(raw)
    available = info.get("available")  # reports written before statuses had names
    return Status.AVAILABLE if available is True else Status.MISSING if available is False else Status.UNKNOWN


def has_feature(capabilities: dict[str, Any], name: str) -> bool:
    """May work for ``name`` run on this portal? Only a feature known missing is withheld: an
    unchecked or unknown one is not, since its events arrive only where they were bound."""
    return feature_status(capabilities, name) != Status.MISSING


def carry_last_known(previous: dict[str, Any], report: dict[str, Any]) -> None:
    """Give every feature of ``report`` its last known status (available/missing), carried across
    checks that could not learn it."""
    before = previous.get("features") or {}
    for name, now in (report.get("features") or {}).items():
        if now.get("status") in (Status.AVAILABLE, Status.MISSING):
            now["last_known"] = now["status"]
        elif (before.get(name) or {}).get("last_known"):
            now["last_known"] = before[name]["last_known"]


def history_changes(previous: dict[str, Any], report: dict[str, Any]) -> list[dict[str, Any]]:
    """What changed that an operator should see later. A status that could not be learned is no
    change: it is compared with the last known one when it is learned again."""
    changes: list[dict[str, Any]] = []
    before = previous.get("features") or {}
    for name, now in (report.get("features") or {}).items():
        if now.get("status") not in (Status.AVAILABLE, Status.MISSING):
            continue
        old = before.get(name) or {}
        last_known = old.get("last_known") or (
            old.get("status") if old.get("status") in (Status.AVAILABLE, Status.MISSING) else None
        )
        # After a check that learned nothing, only the status is comparable.
        same_lists = old.get("status") == Status.UNKNOWN or all(
            sorted(old.get(k) or []) == sorted(now.get(k) or [])
            for k in ("missing_methods", "missing_events", "missing_scopes")
        )
        if last_known == now.get("status") and same_lists:
            continue
        changes.append(
            {
                "feature": name,
                "from": last_known or "not checked",
                "to": now.get("status"),
                "missing_methods": now.get("missing_methods", []),
                "missing_events": now.get("missing_events", []),
                "missing_scopes": now.get("missing_scopes", []),
            }
        )
    old_kind = (previous.get("kind") or {}).get("kind")
    new_kind = (report.get("kind") or {}).get("kind")
    if new_kind and old_kind != new_kind:
        changes.append({"kind": {"from": old_kind or "not checked", "to": new_kind}})
    old_plan = (previous.get("plan") or {}).get("license")
    new_plan = (report.get("plan") or {}).get("license")
    if new_plan and old_plan != new_plan:
        changes.append({"plan": {"from": old_plan, "to": new_plan}})
    return changes


def next_check_at(report: dict[str, Any], now: int, interval_s: int, soon_s: int) -> int | None:
    """Soon when something could not be learned (or binding failed), after ``interval_s`` when
    something is missing, never when everything is there."""
    statuses = {f.get("status") for f in (report.get("features") or {}).values()}
    if Status.UNKNOWN in statuses or report.get("bind_errors"):
        return now + soon_s
    if Status.MISSING in statuses:
        return now + interval_s
    return None
