"""B24App: every name is checked against the manifest at import, and handlers get a context."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from b24core import B24App, Context, Event, InMemoryAppStorage, Page, Portal
from b24core.capabilities.manifest import ManifestError

MANIFEST = {
    "title": "t",
    "scopes": ["crm", "placement", "task"],
    "features": {
        "crm": {
            "scopes": ["crm"],
            "methods": ["crm.deal.get"],
            "events": ["ONCRMDEALADD", "ONCRMDEALUPDATE"],
        },
        "tab": {
            "scopes": ["placement"],
            "methods": ["placement.bind"],
            "placements": [{"code": "CRM_DEAL_DETAIL_TAB", "title": "Tab"}],
        },
        "tasks": {"scopes": ["task"], "methods": ["tasks.task.get"], "events": ["ONTASKUPDATE"]},
    },
}


@pytest.fixture
def app(tmp_path: Path) -> B24App:
    (tmp_path / "m.json").write_text(json.dumps(MANIFEST))
    return B24App(manifest=tmp_path / "m.json")


def test_an_event_outside_the_manifest_is_an_error_at_import_with_a_did_you_mean(app: B24App) -> None:
    with pytest.raises(ManifestError, match=r"ONCRMDEALUPDAT .*never be bound.*did you mean ONCRMDEALUPDATE"):
        app.event("ONCRMDEALUPDAT")
    with pytest.raises(ManifestError, match=r"@app\.installed"):
        app.event("ONAPPINSTALL")
    with pytest.raises(ManifestError, match=r"read='crm\.deal\.list' is not a method"):
        app.event("ONCRMDEALADD", read="crm.deal.list")
    with pytest.raises(ManifestError, match="did you mean CRM_DEAL_DETAIL_TAB"):
        app.page("CRM_DEAL_DETAIL_TABS")
    with pytest.raises(ManifestError, match="did you mean tasks"):
        app.feature_enabled("task")


def test_the_feature_comes_from_the_manifest_and_handlers_get_their_portals_storage(app: B24App) -> None:
    seen: list[str] = []

    @app.event("ONCRMDEALADD", "onCrmDealUpdate", read="crm.deal.get", idempotent=True)
    def on_deal(event: Event, ctx: Context) -> None:
        ctx.storage.put(f"deal/{event.object_id}", {"n": len(seen)})
        seen.append(event.name)

    regs = app.registry.handlers_for("ONCRMDEALUPDATE")
    assert [(r.feature, r.fetch, r.idempotent) for r in regs] == [("crm", "crm.deal.get", True)]
    stores: dict[str, InMemoryAppStorage] = {}
    app.registry.storage_factory = lambda member_id: stores.setdefault(member_id, InMemoryAppStorage())
    for member in ("a", "b"):
        ctx = Context(portal=Portal(member, "d", "https://d/rest/"), client=None)
        event = Event("ONCRMDEALADD", member, "d", data={"FIELDS": {"ID": "7"}})
        assert app.registry.dispatch(event, ctx) == 1
    assert stores["a"].get("deal/7") == {"n": 0} and stores["b"].get("deal/7") == {"n": 1}
    # only the handlers of the asked kind run (the guarded ones are run through the guard)
    assert app.registry.dispatch(event, ctx, idempotent=False) == 0


def test_a_task_events_object_id_comes_from_fields_after() -> None:
    assert Event("ONTASKUPDATE", "m", "d", data={"FIELDS_AFTER": {"ID": "12"}}).object_id == "12"


def test_the_example_mirrors_a_deal_and_its_tab_shows_the_history() -> None:
    from b24core import PageUser
    from deal_mirror.app import app as example

    storage = InMemoryAppStorage()
    portal = Portal("m", "d", "https://d/rest/")
    ctx = Context(portal=portal, client=None, _storage=storage)
    for stage, when in (("NEW", "2026-12-01T10:00:00+03:00"), ("WON", "2026-12-02T10:00:00+03:00")):
        deal = {"ID": "5", "TITLE": "<b>Big</b>", "STAGE_ID": stage, "DATE_MODIFY": when}
        event = Event("ONCRMDEALUPDATE", "m", "d", data={"FIELDS": {"ID": "5"}}, object=deal)
        example.registry.dispatch(event, ctx)
        example.registry.dispatch(event, ctx)  # idempotent: a second run writes the same entry
    ctx.user = PageUser("3", False, "CRM_DEAL_DETAIL_TAB", {"ID": "5"}, "en")
    page = example.pages["CRM_DEAL_DETAIL_TAB"](ctx)
    assert isinstance(page, Page)
    assert page.body.count("class='version'") == 2 and "WON" in page.body
    assert "&lt;b&gt;Big" in page.body and "<b>Big" not in page.body


class FakeCrm:
    """The two calls the lead rotation makes."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, str]] = []

    def call(self, method: str, params: dict | None = None):
        if method == "user.get":
            return [{"ID": "1", "NAME": "Ann"}, {"ID": "2", "NAME": "<Bob>"}, {"ID": "3", "NAME": "Cy"}]
        assert method == "crm.lead.update"
        self.updates.append((str(params["id"]), params["fields"]["ASSIGNED_BY_ID"]))
        return True


def test_the_lead_rotation_assigns_new_leads_in_turn_from_the_admins_settings() -> None:
    from b24core import PageUser
    from lead_rotation.app import app as rotation

    crm = FakeCrm()
    admin = PageUser("1", True, "DEFAULT", {}, "en")
    ctx = Context(
        portal=Portal("m", "d", "https://d/rest/"), client=crm, _storage=InMemoryAppStorage(), user=admin
    )
    lead = Event("ONCRMLEADADD", "m", "d", data={"FIELDS": {"ID": "9"}}, object={"ID": "9"})
    rotation.registry.dispatch(lead, ctx)
    assert crm.updates == []  # no rotation chosen yet: nothing assigned
    with pytest.raises(ValueError):
        rotation.actions["save_rotation"].run(ctx, {"users": ["1", "x"]})
    assert rotation.actions["save_rotation"].admin_only is True
    assert rotation.actions["save_rotation"].run(ctx, {"users": ["3", "1", "3"]}) == {"users": ["3", "1"]}
    for lead_id in ("10", "11", "12"):
        rotation.registry.dispatch(Event("ONCRMLEADADD", "m", "d", object={"ID": lead_id}), ctx)
    assert crm.updates == [("10", "3"), ("11", "1"), ("12", "3")]
    page = rotation.pages["DEFAULT"](ctx)
    assert "value='3' checked" in page.body and "&lt;Bob&gt;" in page.body and "id='save'" in page.body
    ctx.user = PageUser("2", False, "DEFAULT", {}, "en")
    page = rotation.pages["DEFAULT"](ctx)
    assert "id='save'" not in page.body and "disabled" in page.body


def test_installed_and_feature_enabled_hooks_run_after_the_check_and_a_failing_hook_is_contained(
    app: B24App, monkeypatch
) -> None:
    from b24core.entry import capability_check

    calls: list[str] = []

    @app.installed
    def hello(ctx: Context) -> None:
        calls.append(f"installed:{ctx.portal.member_id}")

    @app.feature_enabled("tasks")
    def tasks_on(ctx: Context) -> None:
        calls.append("tasks")
        raise RuntimeError("the author's bug")

    monkeypatch.setattr(capability_check.runtime, "the_app", lambda: app)
    monkeypatch.setattr(capability_check.runtime, "app_storage", lambda member_id: InMemoryAppStorage())
    portal = Portal("m", "d", "https://d/rest/")
    missing = {"features": {"tasks": {"status": "missing"}, "crm": {"status": "available"}}}
    found = {
        "trigger": "recheck",
        "features": {"tasks": {"status": "available"}, "crm": {"status": "available"}},
    }
    capability_check.run_app_hooks(portal, None, {}, {**missing, "trigger": "install"})
    assert calls == ["installed:m"]  # tasks missing: its hook waits
    capability_check.run_app_hooks(portal, None, missing, found)  # a box updated: tasks came
    assert calls == ["installed:m", "tasks"]  # ran once, its failure logged and counted, not raised
    capability_check.run_app_hooks(portal, None, found, found)
    assert calls == ["installed:m", "tasks"]  # not again while it stays available
