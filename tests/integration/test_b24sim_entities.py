"""The simulator's objects over real HTTP, from one generic model: CRM deals, leads, contacts and
companies, and tasks (camelCase rows, wrapped results, FIELDS_AFTER events), plus placements."""

from __future__ import annotations

import pytest

from tests.integration import test_b24sim as base
from tests.integration.test_b24sim import Receiver, call, install_event

sim = base.sim  # the same fixtures: a simulator on a free port, a receiver of deliveries
receiver = base.receiver

CRM = ["crm.deal", "crm.lead", "crm.contact", "crm.company"]


@pytest.mark.parametrize("kind", CRM)
def test_every_crm_kind_has_crud_list_and_its_events(sim, receiver: Receiver, kind: str) -> None:
    portal = sim.add_portal("acme.bitrix24.com")
    token = install_event(sim, portal, receiver)["access_token"]
    entity = kind.split(".")[1].upper()
    for event in ("ADD", "UPDATE", "DELETE"):
        assert call(
            portal, "event.bind", token, event=f"ONCRM{entity}{event}", handler=receiver.url + "/ev"
        ).json()
    added = call(portal, f"{kind}.add", token, fields={"COMMENTS": "first"}).json()["result"]
    for i in range(60):
        portal.ui_add(kind, {"COMMENTS": f"c{i}"})
    row = call(portal, f"{kind}.get", token, id=added).json()["result"]
    assert row["ID"] == str(added) and row["COMMENTS"] == "first" and row["DATE_MODIFY"]
    sim.clock.advance(120)
    assert (
        call(portal, f"{kind}.update", token, id=added, fields={"COMMENTS": "second"}).json()["result"]
        is True
    )
    changed = call(
        portal,
        f"{kind}.list",
        token,
        filter={">=DATE_MODIFY": row["DATE_MODIFY"], "ID": added},
        select=["ID"],
    ).json()
    assert [r["ID"] for r in changed["result"]] == [str(added)]
    first = call(portal, f"{kind}.list", token, order={"ID": "ASC"}, select=["ID"]).json()
    assert (len(first["result"]), first["next"], first["total"]) == (50, 50, 61)
    assert call(portal, f"{kind}.delete", token, id=added).json()["result"] is True
    gone = call(portal, f"{kind}.get", token, id=added)
    assert (gone.status_code, gone.json()["error_description"]) == (400, "Not found")
    assert "TITLE" in call(portal, f"{kind}.fields", token).json()["result"] or kind == "crm.contact"
    events = [r.form for r in receiver.at("/ev")]
    ours = [e for e in events if e["data"]["FIELDS"]["ID"] == str(added)]
    assert [e["event"] for e in ours] == [f"ONCRM{entity}ADD", f"ONCRM{entity}UPDATE", f"ONCRM{entity}DELETE"]


def test_tasks_answer_camel_case_rows_wrapped_and_their_events_carry_fields_after(
    sim, receiver: Receiver
) -> None:
    portal = sim.add_portal("acme.bitrix24.com")
    token = install_event(sim, portal, receiver)["access_token"]
    for event in ("ONTASKADD", "ONTASKUPDATE", "ONTASKDELETE"):
        call(portal, "event.bind", token, event=event, handler=receiver.url + "/ev")
    task = call(portal, "tasks.task.add", token, fields={"TITLE": "Call back", "RESPONSIBLE_ID": 1}).json()
    task_id = int(task["result"]["task"]["id"])
    assert task["result"]["task"]["title"] == "Call back" and "changedDate" in task["result"]["task"]
    got = call(portal, "tasks.task.get", token, taskId=task_id).json()["result"]["task"]
    assert got["responsibleId"] == "1"
    sim.clock.advance(60)
    call(portal, "tasks.task.update", token, taskId=task_id, fields={"TITLE": "Call back today"})
    listed = call(
        portal,
        "tasks.task.list",
        token,
        filter={">=CHANGED_DATE": got["changedDate"]},
        select=["ID", "TITLE"],
    ).json()
    assert [t["title"] for t in listed["result"]["tasks"]] == ["Call back today"]
    assert call(portal, "tasks.task.delete", token, taskId=task_id).json()["result"] == {"task": True}
    bad = call(portal, "tasks.task.get", token, taskId="x")
    assert bad.status_code == 400 and bad.json()["error"] == "0"
    events = {e["event"]: e["data"] for e in (r.form for r in receiver.at("/ev"))}
    assert events["ONTASKADD"]["FIELDS_AFTER"]["ID"] == str(task_id)
    assert events["ONTASKUPDATE"]["FIELDS_AFTER"]["ID"] == str(task_id)
    assert events["ONTASKDELETE"]["FIELDS_BEFORE"]["ID"] == str(task_id)
    assert events["ONTASKDELETE"]["FIELDS_AFTER"] == "undefined"


def test_a_box_without_the_tasks_module_lacks_its_methods_and_events(sim, receiver: Receiver) -> None:
    box = sim.add_portal("box.example.com", profile="box")
    box.disable_module("tasks")
    token = install_event(sim, box, receiver)["access_token"]
    missing = call(box, "tasks.task.list", token)
    assert missing.status_code == 404 and missing.json()["error"] == "ERROR_METHOD_NOT_FOUND"
    assert "tasks.task.get" not in call(box, "methods", token).json()["result"]
    assert "ONTASKADD" not in call(box, "events", token).json()["result"]


def test_placements_are_offered_bound_listed_and_unbound_as_documented(sim, receiver: Receiver) -> None:
    box = sim.add_portal("box.example.com", profile="box")
    token = install_event(sim, box, receiver)["access_token"]
    offered = call(box, "placement.list", token).json()["result"]
    assert "CRM_DEAL_DETAIL_TAB" in offered and "CRM_DEAL_DETAIL_ACTIVITY" not in offered  # an older crm
    url = receiver.url + "/app"
    for code, title in (("CRM_DEAL_DETAIL_TAB", "T"), ("CRM_LEAD_DETAIL_TAB", "L")):
        answer = call(box, "placement.bind", token, PLACEMENT=code, HANDLER=url, TITLE=title).json()
        assert answer["result"] is True
    unknown = call(box, "placement.bind", token, PLACEMENT="CRM_DEAL_DETAIL_ACTIVITY", HANDLER=url).json()
    assert unknown["error"] == "ERROR_PLACEMENT_NOT_FOUND"
    assert call(box, "placement.bind", token, PLACEMENT="LEFT_MENU").json()["error"] == "ERROR_ARGUMENT"
    bound = call(box, "placement.get", token).json()["result"]
    assert [(b["placement"], b["handler"], b["title"]) for b in bound] == [
        ("CRM_DEAL_DETAIL_TAB", url, "T"),
        ("CRM_LEAD_DETAIL_TAB", url, "L"),
    ]
    assert call(box, "placement.unbind", token, PLACEMENT="CRM_LEAD_DETAIL_TAB", HANDLER=url).json()[
        "result"
    ] == {"count": 2}
    box.add_user(5, "Ann", admin=False)
    user_token = sim.issue_tokens(box.domain, user_id=5)["access_token"]
    refused = call(box, "placement.bind", user_token, PLACEMENT="LEFT_MENU", HANDLER=url)
    assert refused.status_code == 403 and refused.json()["error"] == "ACCESS_DENIED"
    target, form = sim.frame_form(
        box.domain, url, user_id=5, placement="CRM_DEAL_DETAIL_TAB", placement_options={"ID": "7"}
    )
    assert form["PLACEMENT"] == "CRM_DEAL_DETAIL_TAB" and '"ID":"7"' in form["PLACEMENT_OPTIONS"]
    assert sim.placement_handler(box.domain, "CRM_DEAL_DETAIL_TAB") == url
