"""The capability check against a scripted portal: what it asks, how it decides, what it binds."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from b24core.bitrix.errors import TransportError
from b24core.capabilities.check import check_portal
from b24core.capabilities.manifest import Manifest
from b24core.capabilities.report import (
    Status,
    carry_last_known,
    has_feature,
    history_changes,
    next_check_at,
    unknown_report,
)
from b24core.capabilities.survey import SURVEY, portal_kind
from tests.unit._manifests import MANIFEST

HANDLER = "https://app.example.com/events"
ALL_METHODS = {
    "crm.deal.get",
    "crm.deal.list",
    "telephony.externalcall.register",
    "im.notify.system.add",
    "method.get",
}
ALL_EVENTS = {"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE", "ONEXTERNALCALLSTART", "ONAPPUPDATE"}


class ScriptedPortal:
    """Answers `batch` like a portal would; records every HTTP request (one per `batch`)."""

    def __init__(self, domain: str = "acme.bitrix24.com", **over: Any) -> None:
        self.portal = SimpleNamespace(domain=domain, member_id="m1")
        self.methods = set(ALL_METHODS)
        self.events = set(ALL_EVENTS) | {"ONAPPUNINSTALL"}
        self.scopes = ["crm", "im", "telephony"]
        self.portal_scopes: list[str] | None = None  # every scope the portal has; None = as granted
        self.bound: list[dict[str, Any]] = []
        self.offered = {"CRM_DEAL_DETAIL_TAB", "LEFT_MENU"}  # placement.list
        self.placed: list[dict[str, Any]] = []  # placement.get
        self.app_info = {"LICENSE": "en_pro100", "LICENSE_FAMILY": "pro", "INSTALLED": False, "STATUS": "F"}
        self.failing: set[str] = set()
        self.down = False
        self.requests: list[dict[str, tuple[str, dict[str, Any]]]] = []
        self.__dict__.update(over)

    def batch(self, commands: dict[str, tuple[str, dict[str, Any]]], halt: bool = False) -> dict[str, Any]:
        self.requests.append(dict(commands))
        if self.down:
            raise TransportError("portal unreachable (ReadTimeout)")
        result: dict[str, Any] = {}
        error: dict[str, Any] = {}
        for key, (method, params) in commands.items():
            if method in self.failing:
                error[key] = {"error": "INTERNAL_SERVER_ERROR", "error_description": "x"}
            elif method == "methods" and "methods" in self.failing:
                pass
            elif method == "methods":
                result[key] = sorted(self.methods)
            elif method == "method.get":
                name = params["name"]
                result[key] = {"isExisting": name in self.methods, "isAvailable": name in self.methods}
            elif method == "events":
                result[key] = sorted(self.events)
            elif method == "scope" and params.get("full"):
                result[key] = list(self.portal_scopes if self.portal_scopes is not None else self.scopes)
            elif method == "scope":
                result[key] = list(self.scopes)
            elif method == "app.info":
                result[key] = dict(self.app_info)
            elif method == "server.time":
                result[key] = "2026-01-01T00:00:00+00:00"
            elif method == "profile":
                result[key] = {"ID": "1", "ADMIN": True}
            elif method == "event.get":
                result[key] = list(self.bound)
            elif method == "event.bind":
                if params["event"] not in self.events:
                    error[key] = {"error": "ERROR_EVENT_NOT_FOUND", "error_description": "Event not found"}
                elif any(
                    b["event"] == params["event"] and b["handler"] == params["handler"] for b in self.bound
                ):
                    error[key] = {"error": "ERROR_CORE", "error_description": "Handler already binded"}
                else:
                    self.bound.append({"event": params["event"], "handler": params["handler"], "offline": 0})
                    result[key] = True
            elif method == "im.notify.system.add":
                result[key] = 1
            elif method == "placement.list":
                result[key] = sorted(self.offered)
            elif method == "placement.get":
                result[key] = list(self.placed)
            elif method == "placement.bind":
                if params["PLACEMENT"] not in self.offered:
                    error[key] = {
                        "error": "ERROR_PLACEMENT_NOT_FOUND",
                        "error_description": "Placement not found",
                    }
                else:
                    self.placed.append({"placement": params["PLACEMENT"], "handler": params["HANDLER"]})
                    result[key] = True
            elif method == "placement.unbind":
                before = len(self.placed)
                self.placed = [
                    b
                    for b in self.placed
                    if (b["placement"], b["handler"]) != (params["PLACEMENT"], params["HANDLER"])
                ]
                result[key] = {"count": 2 * (before - len(self.placed))}
            else:
                error[key] = {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}
        return {"result": result, "error": error}


def check(portal: ScriptedPortal, **kw: Any) -> dict[str, Any]:
    return check_portal(portal, MANIFEST, HANDLER, clock=lambda: 1_767_225_600.0, **kw)  # type: ignore[arg-type]


def test_a_cloud_portal_gets_every_feature_from_one_request_and_binds_every_event():
    portal = ScriptedPortal()
    report = check(portal)
    assert {n: f["status"] for n, f in report["features"].items()} == {
        "crm": "available",
        "telephony": "available",
        "notifications": "available",
    }
    probe, bind = portal.requests  # the check is one request; binding is the second, separate one
    assert {m for m, _ in probe.values()} == {m for m, _ in SURVEY.values()}
    assert {p["event"] for _, p in bind.values()} == ALL_EVENTS | {"ONAPPUNINSTALL"}
    assert report["required_ok"] is True
    assert report["kind"] == {
        "kind": "cloud",
        "told_by": "the domain acme.bitrix24.com is a Bitrix24 cloud domain",
    }
    assert report["plan"]["license"] == "en_pro100" and report["plan"]["install_finished"] is False
    assert report["clock_skew_s"] == 0


def test_a_box_without_telephony_keeps_crm_and_names_exactly_what_telephony_lacks():
    portal = ScriptedPortal("crm.acme.local")
    portal.methods -= {"telephony.externalcall.register"}
    portal.events -= {"ONEXTERNALCALLSTART"}
    portal.scopes = ["crm", "im"]
    portal.app_info = {"LICENSE": "ru_selfhosted", "LICENSE_FAMILY": "selfhosted"}
    report = check(portal)
    crm, tel = report["features"]["crm"], report["features"]["telephony"]
    assert crm["status"] == "available" and crm["available"] is True
    assert tel["status"] == "missing" and tel["available"] is False
    assert tel["missing_methods"] == ["telephony.externalcall.register"]
    assert tel["missing_events"] == ["ONEXTERNALCALLSTART"]
    assert tel["missing_scopes"] == ["telephony"]
    assert "telephony.externalcall.register" in tel["reason"]
    assert report["kind"]["kind"] == "box" and "selfhosted" in report["kind"]["told_by"]
    assert report["required_ok"] is True
    bound_now = {p["event"] for _, p in portal.requests[1].values()}
    assert "ONEXTERNALCALLSTART" not in bound_now  # never bind what the portal lacks
    assert {"ONCRMDEALADD", "ONAPPUNINSTALL", "ONAPPUPDATE"} <= bound_now


def test_a_missing_required_method_makes_the_install_not_ok():
    portal = ScriptedPortal()
    portal.methods -= {"crm.deal.list"}
    report = check(portal)
    assert report["features"]["crm"]["status"] == "missing"
    assert report["features"]["crm"]["missing_methods"] == ["crm.deal.list"]
    assert report["required_ok"] is False


def test_a_failed_sub_call_makes_what_it_covers_unknown_never_missing():
    portal = ScriptedPortal()
    portal.failing = {"events"}
    report = check(portal)
    for name in ("crm", "telephony"):
        feature = report["features"][name]
        assert feature["status"] == "unknown" and feature["available"] is None
        assert feature["missing_events"] == [] and feature["missing_methods"] == []
        assert "INTERNAL_SERVER_ERROR" in feature["reason"]
    assert report["features"]["notifications"]["status"] == "available"  # needs no event
    assert report["required_ok"] is True  # nothing required is KNOWN missing
    assert report["errors"] == {"events": "INTERNAL_SERVER_ERROR"}
    assert next_check_at(report, 100, 7 * 86400, 3600) == 100 + 3600


def test_without_the_method_list_it_asks_method_get_for_each_needed_method():
    portal = ScriptedPortal()
    portal.failing = {"methods"}
    portal.methods -= {"telephony.externalcall.register"}
    report = check(portal)
    assert [m for m, _ in portal.requests[1].values()] == ["method.get"] * 4
    assert report["sources"]["methods"] == "method.get"
    assert report["features"]["crm"]["status"] == "available"
    assert report["features"]["telephony"]["missing_methods"] == ["telephony.externalcall.register"]
    assert report["features"]["telephony"]["not_existing_methods"] == ["telephony.externalcall.register"]


def test_a_portal_that_does_not_answer_raises_and_the_caller_records_unknown():
    portal = ScriptedPortal(down=True)
    with pytest.raises(TransportError):
        check(portal)
    previous = {
        "features": {"telephony": {"status": "missing", "last_known": "missing"}},
        "kind": {"kind": "box"},
    }
    report = unknown_report(MANIFEST, previous, "TransportError", 5, HANDLER)
    carry_last_known(previous, report)
    assert {f["status"] for f in report["features"].values()} == {"unknown"}
    assert report["features"]["telephony"]["last_known"] == "missing"
    assert report["required_ok"] is True and report["kind"] == {"kind": "box"}
    assert history_changes(previous, report) == []  # not learning is not a change


def test_events_already_bound_to_our_handler_are_not_bound_again():
    portal = ScriptedPortal()
    check(portal)
    again = check(portal)
    assert len(portal.requests) == 3  # second check: probe only, nothing left to bind
    assert set(again["bound"]) == ALL_EVENTS | {"ONAPPUNINSTALL"}


def test_a_bind_answered_already_binded_counts_as_bound():
    portal = ScriptedPortal()
    portal.failing = {"event.get"}  # the check cannot see the bindings, so it binds everything again
    portal.bound = [{"event": "ONCRMDEALADD", "handler": HANDLER, "offline": 0}]
    report = check(portal)
    assert "ONCRMDEALADD" in report["bound"] and "ONCRMDEALADD" not in report["bind_errors"]


@pytest.mark.parametrize(
    ("domain", "info", "kind"),
    [
        ("acme.bitrix24.de", {"LICENSE_FAMILY": "ent"}, "cloud"),
        ("crm.acme.ru", {"LICENSE_FAMILY": "selfhosted"}, "box"),
        ("127.0.0.1:8080", {"LICENSE_FAMILY": "pro"}, "cloud"),
        ("crm.acme.ru", {"LICENSE_FAMILY": "ent"}, "box"),
        ("", None, "unknown"),
    ],
)
def test_portal_kind_says_how_it_was_told(domain, info, kind):
    verdict = portal_kind(domain, info)
    assert verdict["kind"] == kind and verdict["told_by"]


def test_history_records_a_feature_turning_on_and_ignores_unknown_spells():
    before = {
        "features": {"telephony": {"status": "missing", "missing_methods": ["x"], "last_known": "missing"}}
    }
    unknown = {"features": {"telephony": {"status": "unknown", "missing_methods": []}}}
    carry_last_known(before, unknown)
    assert history_changes(before, unknown) == []
    after = {"features": {"telephony": {"status": "available", "missing_methods": []}}}
    carry_last_known(unknown, after)
    changes = history_changes(unknown, after)
    assert changes == [
        {
            "feature": "telephony",
            "from": "missing",
            "to": "available",
            "missing_methods": [],
            "missing_events": [],
            "missing_scopes": [],
        }
    ]


def test_next_check_soon_when_unknown_after_the_interval_when_missing_never_when_complete():
    assert next_check_at({"features": {"a": {"status": "available"}}}, 10, 100, 5) is None
    assert next_check_at({"features": {"a": {"status": "missing"}}}, 10, 100, 5) == 110
    assert next_check_at({"features": {"a": {"status": "unknown"}}}, 10, 100, 5) == 15


@pytest.mark.parametrize(
    ("status", "expected"), [("available", True), ("missing", False), ("unknown", True), (None, True)]
)
def test_has_feature_withholds_only_a_feature_known_missing(status, expected):
    caps = {"features": {"telephony": {"status": status}}} if status else {}
    assert has_feature(caps, "telephony") is expected
    assert Status("missing").flag is False


def test_a_scope_the_portal_lacks_means_a_missing_module_a_scope_not_granted_means_permissions():
    box = ScriptedPortal("crm.acme.local")
    box.methods -= {"telephony.externalcall.register"}
    box.events -= {"ONEXTERNALCALLSTART"}
    box.scopes = ["crm", "im"]
    telephony = check(box)["features"]["telephony"]
    assert telephony["scopes_not_on_portal"] == ["telephony"] and telephony["module_missing"] is True

    not_granted = ScriptedPortal("crm.acme.local", portal_scopes=["crm", "im", "telephony"])
    not_granted.methods -= {"telephony.externalcall.register"}  # hidden: the app may not call it
    not_granted.events -= {"ONEXTERNALCALLSTART"}
    not_granted.scopes = ["crm", "im"]
    telephony = check(not_granted)["features"]["telephony"]
    assert telephony["missing_scopes"] == ["telephony"] and telephony["scopes_not_on_portal"] == []
    assert telephony["module_missing"] is False


TAB_MANIFEST = Manifest.from_dict(
    {
        "scopes": ["crm", "placement"],
        "features": {
            "crm": {
                "required": True,
                "scopes": ["crm"],
                "methods": ["crm.deal.get"],
                "events": ["ONCRMDEALADD"],
            },
            "tab": {
                "scopes": ["placement"],
                "methods": ["crm.deal.get"],
                "placements": [{"code": "CRM_DEAL_DETAIL_TAB", "title": "History"}],
            },
        },
    }
)


def test_placements_the_portal_offers_are_bound_once_to_the_pages_handler_and_dropped_ones_unbound():
    portal = ScriptedPortal(scopes=["crm", "im", "telephony", "placement"])
    pages = HANDLER.removesuffix("/events") + "/app"
    portal.placed = [{"placement": "LEFT_MENU", "handler": pages}]  # an older version's widget
    report = check_portal(portal, TAB_MANIFEST, HANDLER, clock=lambda: 1.0)  # type: ignore[arg-type]
    assert report["features"]["tab"]["status"] == "available"
    assert report["placements"] == {
        "handler": pages,
        "bound": ["CRM_DEAL_DETAIL_TAB"],
        "errors": {},
        "unbound": ["LEFT_MENU"],
    }
    assert portal.placed == [{"placement": "CRM_DEAL_DETAIL_TAB", "handler": pages}]
    bind = portal.requests[-1]
    assert bind["place_CRM_DEAL_DETAIL_TAB"] == (
        "placement.bind",
        {"PLACEMENT": "CRM_DEAL_DETAIL_TAB", "HANDLER": pages, "TITLE": "History"},
    )
    again = check_portal(portal, TAB_MANIFEST, HANDLER, clock=lambda: 2.0)  # type: ignore[arg-type]
    assert again["placements"]["bound"] == ["CRM_DEAL_DETAIL_TAB"]
    assert not any(m == "placement.bind" for m, _ in portal.requests[-1].values())


def test_a_placement_the_portal_lacks_is_missing_like_a_method_and_the_rest_is_bound():
    portal = ScriptedPortal(scopes=["crm", "im", "telephony", "placement"], offered={"LEFT_MENU"})
    report = check_portal(portal, TAB_MANIFEST, HANDLER, clock=lambda: 1.0)  # type: ignore[arg-type]
    tab = report["features"]["tab"]
    assert tab["status"] == "missing" and tab["missing_placements"] == ["CRM_DEAL_DETAIL_TAB"]
    assert "placement CRM_DEAL_DETAIL_TAB" in tab["reason"]
    assert report["features"]["crm"]["status"] == "available" and report["required_ok"] is True
    assert "ONCRMDEALADD" in report["bound"] and portal.placed == []
