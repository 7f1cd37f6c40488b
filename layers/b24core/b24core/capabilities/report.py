"""The capability report: what each feature's status is, decided from a survey, and how a stored
report is read (a feature known missing, what changed since the last check, when to check again).

What could not be learned is "unknown", never "missing".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from b24core.capabilities.manifest import Feature, Manifest
from b24core.capabilities.survey import PortalSurvey


class Status(StrEnum):
    AVAILABLE = "available"
    MISSING = "missing"
    UNKNOWN = "unknown"

    @property
    def flag(self) -> bool | None:
        return {Status.AVAILABLE: True, Status.MISSING: False, Status.UNKNOWN: None}[self]


NOT_FOR_WEBHOOKS = "not available to webhooks"


# ---------------------------------------------------------------- deciding per feature
def assess_feature(feature: Feature, survey: PortalSurvey) -> dict[str, Any]:
    missing_methods: list[str] = []
    unknown: list[str] = []
    for method in feature.methods:
        if survey.methods is not None:
            if method not in survey.methods:
                missing_methods.append(method)
        elif survey.method_checks is not None and method in survey.method_checks:
            if not survey.method_checks[method]["available"]:
                missing_methods.append(method)
        else:
            unknown.append(method)
    missing_events: list[str] = []
    for event in feature.events:
        if survey.events is None:
            unknown.append(event)
        elif event not in survey.events:
            missing_events.append(event)
    missing_placements: list[str] = []
    for placement in feature.placements:
        if survey.placements is None:
            unknown.append(f"placement:{placement.code}")
        elif placement.code not in survey.placements:
            missing_placements.append(placement.code)
    missing_scopes: list[str] = []
    for scope in feature.scopes:
        if survey.scopes is None:
            unknown.append(f"scope:{scope}")
        elif scope not in survey.scopes:
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
            f"{key} ({code})" for key, code in survey.errors.items() if key in ("methods", "events", "scope")
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
        if survey.method_checks is not None and not survey.method_checks.get(m, {}).get("exists", True)
    ]
    # What the admin must do differs: a scope the portal has but did not grant needs the app's
    # permissions; a scope the portal does not have at all means its module is missing.
    scopes_not_on_portal = [
        s for s in missing_scopes if survey.portal_scopes is not None and s not in survey.portal_scopes
    ]
    if survey.portal_scopes is not None and feature.scopes:
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


def assess(manifest: Manifest, survey: PortalSurvey) -> dict[str, dict[str, Any]]:
    return {f.name: assess_feature(f, survey) for f in manifest.features}


def events_not_for_webhooks(features: dict[str, dict[str, Any]]) -> None:
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


@dataclass(frozen=True)
class FeatureReport:
    """One feature of the stored report, typed."""

    name: str
    status: Status
    required: bool = False
    reason: str = ""
    missing_methods: tuple[str, ...] = ()
    missing_events: tuple[str, ...] = ()
    missing_placements: tuple[str, ...] = ()
    missing_scopes: tuple[str, ...] = ()
    module: str = ""
    module_missing: bool = False
    description: str = ""
    unknown: tuple[str, ...] = ()
    #: Scopes the portal has not at all (a module missing), as opposed to not granted to the app.
    scopes_not_on_portal: tuple[str, ...] = ()

    @property
    def lacks_code(self) -> bool:
        """Missing methods, events or placements: the portal's modules are too old or switched off."""
        return bool(self.missing_methods or self.missing_events or self.missing_placements)

    @classmethod
    def of(cls, name: str, raw: Any) -> FeatureReport:
        info = raw if isinstance(raw, dict) else {}
        status = str(info.get("status") or "")
        return cls(
            name=name,
            status=Status(status) if status in tuple(Status) else Status.UNKNOWN,
            required=bool(info.get("required")),
            reason=str(info.get("reason") or ""),
            missing_methods=tuple(info.get("missing_methods") or ()),
            missing_events=tuple(info.get("missing_events") or ()),
            missing_placements=tuple(info.get("missing_placements") or ()),
            missing_scopes=tuple(info.get("missing_scopes") or ()),
            module=str(info.get("module") or ""),
            module_missing=bool(info.get("module_missing")),
            description=str(info.get("description") or ""),
            unknown=tuple(info.get("unknown") or ()),
            scopes_not_on_portal=tuple(info.get("scopes_not_on_portal") or ()),
        )


@dataclass(frozen=True)
class CapabilityReport:
    """The capability report as every reader sees it: typed, whatever an older version stored.

    It is kept in the portal record as JSON (the CLI's ``--json`` shows it as stored); every module
    reads it through this view instead of reaching into the dict by key."""

    features: dict[str, FeatureReport]
    kind: str = ""
    install_finished: bool | None = None
    events_url: str = ""
    admin_user_id: str = ""
    trigger: str = ""
    isolation: dict[str, Any] | None = None
    notified: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, raw: dict[str, Any] | None) -> CapabilityReport:
        data = raw if isinstance(raw, dict) else {}

        def part(key: str) -> dict[str, Any]:
            value = data.get(key)
            return value if isinstance(value, dict) else {}

        features, kind, plan, notified = part("features"), part("kind"), part("plan"), part("notified")
        finished = plan.get("install_finished")
        isolation = data.get("isolation")
        return cls(
            features={str(n): FeatureReport.of(str(n), f) for n, f in features.items()},
            kind=str(kind.get("kind") or ""),
            install_finished=finished if isinstance(finished, bool) else None,
            events_url=str(data.get("events_url") or ""),
            admin_user_id=str(data.get("admin_user_id") or ""),
            trigger=str(data.get("trigger") or ""),
            isolation=isolation if isinstance(isolation, dict) else None,
            notified={str(k): str(v) for k, v in notified.items()},
        )

    def status(self, name: str) -> Status | None:
        feature = self.features.get(name)
        return feature.status if feature else None

    def newly_available(self, before: CapabilityReport) -> list[str]:
        """Features available now that were not before."""
        return sorted(
            n
            for n, f in self.features.items()
            if f.status == Status.AVAILABLE and before.status(n) != Status.AVAILABLE
        )
