"""What a portal can offer: methods and events, grouped by module, and the two portal profiles.

A real portal's method/event set depends on its modules and their versions. The cloud always has the
newest set; an on-premise ("box") portal may miss whole modules (telephony) or newer methods until its
admin installs updates. Apps are told to check ``methods``/``method.get``/``events`` at install time, so
the simulator keeps these sets explicit and mutable per portal.
"""

from __future__ import annotations

from dataclasses import dataclass

from b24sim.entities import SPECS

#: ``None`` scope = the ``basic`` scope every app has (system and event methods).
BASIC: str | None = None


@dataclass(frozen=True)
class MethodInfo:
    name: str
    module: str
    scope: str | None
    #: Methods that only work with application (OAuth) authorization, not with webhooks.
    app_only: bool = False


@dataclass(frozen=True)
class EventInfo:
    name: str
    module: str
    scope: str | None


def _methods(module: str, scope: str | None, names: str, app_only: bool = False) -> list[MethodInfo]:
    return [MethodInfo(n, module, scope, app_only) for n in names.split()]


def _events(module: str, scope: str | None, names: str) -> list[EventInfo]:
    return [EventInfo(n, module, scope) for n in names.split()]


METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in [
        *_methods("rest", BASIC, "batch methods method.get scope server.time profile user.admin"),
        *_methods("rest", BASIC, "app.info events event.bind event.get event.unbind event.test", True),
        *_methods(
            "rest",
            BASIC,
            "event.offline.get event.offline.clear event.offline.error event.offline.list",
            True,
        ),
        *_methods("main", "user", "user.current user.get"),
        *_methods("rest", "placement", "placement.bind placement.unbind placement.get placement.list", True),
        *(MethodInfo(name, spec.module, spec.scope) for spec in SPECS.values() for name in spec.methods),
        *_methods("im", "im", "im.notify im.notify.system.add im.notify.personal.add"),
        *_methods(
            "telephony",
            "telephony",
            "telephony.externalcall.register telephony.externalcall.finish "
            "telephony.externalcall.show telephony.externalcall.hide",
        ),
    ]
}

EVENTS: dict[str, EventInfo] = {
    e.name: e
    for e in [
        *_events(
            "rest",
            BASIC,
            "ONAPPINSTALL ONAPPUNINSTALL ONAPPUPDATE ONAPPPAYMENT ONAPPTEST ONAPPMETHODCONFIRM "
            "ONOFFLINEEVENT",
        ),
        *_events("main", "user", "ONUSERADD"),
        *(EventInfo(name, spec.module, spec.scope) for spec in SPECS.values() for name in spec.events),
        *_events("telephony", "telephony", "ONEXTERNALCALLSTART ONEXTERNALCALLBACKSTART"),
    ]
}

#: Scopes each module brings to a portal (``scope`` with ``full=true`` lists the union).
MODULE_SCOPES: dict[str, tuple[str, ...]] = {
    "rest": ("placement",),
    "main": ("user", "user_brief", "user_basic", "department"),
    "crm": ("crm",),
    "tasks": ("task",),
    "im": ("im",),
    "telephony": ("telephony", "call"),
}


@dataclass(frozen=True)
class PlacementInfo:
    """A widget place in Bitrix24's UI (api-reference/widgets/placements.md): the module that shows it
    and the scope the app needs for ``placement.list`` to offer it."""

    code: str
    module: str
    scope: str | None


PLACEMENTS: dict[str, PlacementInfo] = {
    p.code: p
    for p in [
        *(PlacementInfo(c, "rest", None) for c in ("LEFT_MENU", "REST_APP_URI", "PAGE_BACKGROUND_WORKER")),
        *(
            PlacementInfo(f"CRM_{entity}_{place}", "crm", "crm")
            for entity in ("DEAL", "LEAD", "CONTACT", "COMPANY")
            for place in ("DETAIL_TAB", "DETAIL_TOOLBAR", "LIST_MENU", "LIST_TOOLBAR", "DETAIL_ACTIVITY")
        ),
        PlacementInfo("TELEPHONY_CALL_CARD", "telephony", "telephony"),
        PlacementInfo("TASK_VIEW_TAB", "tasks", "task"),
    ]
}

#: A method in scope "user" is also callable with the reduced user scopes.
SCOPE_ALIASES: dict[str, tuple[str, ...]] = {"user": ("user", "user_brief", "user_basic")}


@dataclass(frozen=True)
class Profile:
    name: str
    modules: frozenset[str]
    #: Methods of enabled modules that this profile's (older) module versions do not have yet.
    missing_methods: frozenset[str]
    license_type: str
    license_family: str
    #: Placements newer than this profile's module versions.
    missing_placements: frozenset[str] = frozenset()


PROFILES: dict[str, Profile] = {
    "cloud": Profile("cloud", frozenset(MODULE_SCOPES), frozenset(), "pro100", "pro"),
    "box": Profile(
        "box",
        frozenset(MODULE_SCOPES) - {"telephony"},
        # Stands for "a method newer than this box's im module": present in the cloud, not here.
        frozenset({"im.notify.system.add", "im.notify.personal.add"}),
        "selfhosted",
        "selfhosted",
        # The activity-area placement came to the CRM long after the detail tab: a box that has not
        # updated its crm module offers the tab but not this one.
        frozenset({f"CRM_{e}_DETAIL_ACTIVITY" for e in ("DEAL", "LEAD", "CONTACT", "COMPANY")}),
    ),
}
