"""An isolated box end to end: diagnosed through the stack, connected with `b24app portals connect-webhook`,
re-checked through the webhook; bad webhooks are refused by the CLI with nothing stored."""

from __future__ import annotations

import json

import httpx
import pytest

from b24cli.main import main
from b24sim import forms
from tests.e2e.conftest import wait_for

UNREACHABLE = "authorization server unreachable from the portal"


@pytest.fixture
def cli(stack, monkeypatch, capsys):
    monkeypatch.delenv("B24_STACK_NAME", raising=False)
    monkeypatch.delenv("B24_TABLE_NAME", raising=False)
    monkeypatch.setenv("B24_LOCAL_STATE_DIR", str(stack.state_dir))

    def run(*argv: str) -> tuple[int, str]:
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out if "--json" in argv else out.out + out.err

    return run


def test_isolated_box_is_diagnosed_connected_by_webhook_and_checked_through_it(
    sim, stack, store, install_url, cli
):
    box = sim.add_portal(profile="box", queue_blocked=True)
    box.auth_server_blocked = True
    assert sim.install(box.domain, install_url, mode="ui", scope="crm,im,user").status_code == 200
    found = wait_for(
        lambda: (store.get(box.member_id) or None) and store.get(box.member_id).capabilities.get("isolation"),
        what="the isolation diagnosis",
    )
    assert found["auth_server"] == "authorization_server_unreachable_from_portal"
    code, out = cli("portals", "show", box.member_id)
    assert code == 0 and UNREACHABLE in out and "oauth.bitrix.info" in out and "connect-webhook" in out
    assert "auth mode" in out and "oauth" in out

    # Bad input through the CLI: refused, nothing stored.
    lacking = box.add_incoming_webhook(["user"])
    code, out = cli("portals", "connect-webhook", "--incoming", lacking)
    assert code == 1 and "lacks the scope(s) crm" in out and "nothing was stored" in out
    wrong = box.client_endpoint + "1/" + "0" * 32 + "/"
    code, out = cli("portals", "connect-webhook", "--incoming", wrong)
    assert code == 1 and "refused" in out
    code, out = cli("portals", "show", box.member_id, "--json")
    assert json.loads(out)["auth_mode"] == "oauth"

    url = box.add_incoming_webhook(["crm", "im", "user"])
    secret = url.rstrip("/").rsplit("/", 1)[-1]
    code, out = cli("portals", "connect-webhook", "--incoming", url, "--outgoing-token", "a" * 32, "--json")
    assert code == 0, out
    view = json.loads(out)
    assert view["member_id"] == box.member_id and view["domain"] == box.domain and view["created"] is False
    assert view["auth_mode"] == "webhook" and secret not in out and "a" * 32 not in out

    box.restore_method("im.notify.system.add")  # this box can notify its admin (through the webhook)
    code, out = cli("portals", "recheck", box.member_id)
    assert code == 0, out
    told = [n for n in box.notifications if "authorization server unreachable" in n["message"]]
    assert len(told) == 1 and "oauth.bitrix.info" in told[0]["message"]
    code, out = cli("portals", "recheck", box.member_id)  # no spam: once per change
    assert len([n for n in box.notifications if "authorization server unreachable" in n["message"]]) == 1
    caps = store.get(box.member_id).capabilities
    assert caps["features"]["crm"]["status"] == "available"
    assert caps["sources"]["events"] == "not available to webhooks" and caps["sources"]["auth"] == "webhook"
    assert caps["isolation"]["auth_server"] == "authorization_server_unreachable_from_portal"

    code, out = cli("portals", "show", box.member_id)
    assert "webhook" in out and UNREACHABLE in out and "outgoing webhook" in out and secret not in out
    code, out = cli("portals", "disconnect-webhook", box.member_id)
    assert code == 0 and "OAuth" in out
    code, out = cli("portals", "show", box.member_id, "--json")
    assert json.loads(out)["auth_mode"] == "oauth" and secret not in out


def test_outgoing_webhook_events_reach_the_mirror_and_forgeries_are_refused(
    sim, stack, store, install_url, events_url, mirror, cli
):
    box = sim.add_portal(profile="box")
    box.auth_server_blocked = True  # OAuth REST fails; the queue is open
    assert sim.install(box.domain, install_url, mode="ui", scope="crm,im,user").status_code == 200
    wait_for(lambda: (store.get(box.member_id) or None) is not None, what="the portal record")
    token = box.add_outgoing_webhook(events_url, ["ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE"])
    incoming = box.add_incoming_webhook(["crm", "im", "user"])
    code, out = cli("portals", "connect-webhook", "--incoming", incoming, "--outgoing-token", token, "--json")
    assert code == 0, out
    # At rest (b24core.portals.sealing): the webhook's code is sealed, the outgoing token only hashed.
    hook_code = incoming.rstrip("/").rsplit("/", 1)[-1]
    ddb = stack.services.client("dynamodb")
    raw = [
        ddb.get_item(
            TableName=stack.resources["AppTable"],
            Key={"pk": {"S": f"PORTAL#{box.member_id}"}, "sk": {"S": sk}},
            ConsistentRead=True,
        )["Item"]
        for sk in ("WEBHOOK", "PORTAL")
    ]
    text = repr(raw)
    assert "b24e1:" in text and hook_code not in text and token not in text, "a webhook secret readable"

    deal = box.ui_deal_add({"TITLE": "Hooked"})
    wait_for(lambda: (mirror.get(box.member_id, str(deal)) or {}).get("TITLE") == "Hooked", what="add")
    box.ui_deal_update(deal, {"TITLE": "Hooked again"})
    wait_for(
        lambda: (mirror.get(box.member_id, str(deal)) or {}).get("TITLE") == "Hooked again", what="update"
    )
    box.ui_deal_delete(deal)
    wait_for(lambda: mirror.get(box.member_id, str(deal)) is None, what="delete")
    through = [d for d in sim.deliveries if d.portal == box.domain and d.event.startswith("ONCRMDEAL")]
    assert {d.outcome for d in through} == {"delivered"} and len(through) == 3

    def post(event: str, app_token: str) -> httpx.Response:
        auth = {"member_id": box.member_id, "domain": box.domain, "application_token": app_token}
        body = forms.encode({"event": event, "data": {"FIELDS": {"ID": deal}}, "auth": auth})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return httpx.post(events_url, content=body, headers=headers)

    assert post("ONCRMDEALUPDATE", "f" * 32).status_code == 403  # forged: a wrong token
    assert post("ONAPPUNINSTALL", token).status_code == 403  # the webhook's token never proves app events
    assert store.get(box.member_id).state == "active"

    code, out = cli("portals", "disconnect-webhook", box.member_id)
    assert code == 0
    # Disconnected: the record no longer holds the token (warm intake caches forget it within their TTL).
    assert store.get(box.member_id).webhook_token == ""


def test_box_cut_off_from_both_services_is_served_by_change_polling(
    sim, stack, store, install_url, mirror, cli
):
    box = sim.add_portal(profile="box", queue_blocked=True)
    box.auth_server_blocked = True
    assert sim.install(box.domain, install_url, mode="ui", scope="crm,im,user").status_code == 200
    wait_for(
        lambda: (store.get(box.member_id) or None) and store.get(box.member_id).capabilities.get("isolation"),
        what="the isolation diagnosis",
    )
    code, out = cli(
        "portals", "connect-webhook", "--incoming", box.add_incoming_webhook(["crm", "im"]), "--json"
    )
    assert code == 0 and json.loads(out)["events_by"] == "change polling"
    code, out = cli("portals", "show", box.member_id)
    assert "change polling" in out

    def poll() -> dict:
        return stack.fire_schedule("ChangePollFunction", "Poll")

    assert poll()["audited"] >= 1
    deal = box.ui_deal_add({"TITLE": "Polled"})
    # Listed once its second is over on the portal: the next rounds send it.
    wait_for(
        lambda: poll() and (mirror.get(box.member_id, str(deal)) or {}).get("TITLE") == "Polled", what="add"
    )
    box.ui_deal_update(deal, {"TITLE": "Polled again"})
    wait_for(
        lambda: poll() and (mirror.get(box.member_id, str(deal)) or {}).get("TITLE") == "Polled again",
        what="update",
    )
    box.ui_deal_delete(deal)
    # Deletions come by reconciliation (every 2 s in this stack): keep polling until it is due.
    wait_for(lambda: poll() and mirror.get(box.member_id, str(deal)) is None, what="delete")
    assert not [d for d in sim.deliveries if d.portal == box.domain and d.outcome == "delivered"]


def test_a_portal_known_only_by_its_webhook_gets_its_outgoing_webhook_events(
    sim, stack, store, events_url, mirror, cli
):
    box = sim.add_portal(profile="box")  # the app was never installed through OAuth here
    token = box.add_outgoing_webhook(events_url, ["ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE"])
    incoming = box.add_incoming_webhook(["crm", "im", "user"])
    code, out = cli("portals", "connect-webhook", "--incoming", incoming, "--outgoing-token", token, "--json")
    assert code == 0, out
    view = json.loads(out)
    assert view["created"] is True and view["domain"] == box.domain
    alias = view["member_id"]
    assert alias != box.member_id  # the webhook never told us the real one

    deal = box.ui_deal_add({"TITLE": "Known by webhook"})
    wait_for(lambda: (mirror.get(alias, str(deal)) or {}).get("TITLE") == "Known by webhook", what="add")
    assert mirror.get(box.member_id, str(deal)) is None


QUEUE_UNREACHABLE = "event queue unreachable"
DEAL_EVENTS = ["ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE"]


def _switched(round_: dict, member_id: str) -> str | None:
    """Where the audit round switched this portal's route (``None``: it did not)."""
    return next((s["to"] for s in round_["switched"] if s["member_id"] == member_id), None)


def _shown(cli, member_id: str) -> dict:
    code, out = cli("portals", "show", member_id, "--json")
    assert code == 0, out
    return json.loads(out)


def test_the_audit_sends_what_a_blocked_outgoing_webhook_missed_and_switches_the_route_to_polling(
    sim, stack, store, install_url, events_url, mirror, cli
):
    box = sim.add_portal(profile="box", queue_blocked=True)
    box.auth_server_blocked = True
    assert sim.install(box.domain, install_url, mode="ui", scope="crm,im,user").status_code == 200
    found = wait_for(
        lambda: (store.get(box.member_id) or None) and store.get(box.member_id).capabilities.get("isolation"),
        what="the isolation diagnosis",
    )
    assert found["auth_server"] == "authorization_server_unreachable_from_portal"
    # The admin thinks the queue works: an outgoing webhook, its token given to the app.
    token = box.add_outgoing_webhook(events_url, DEAL_EVENTS)
    incoming = box.add_incoming_webhook(["crm", "im", "user"])
    code, out = cli("portals", "connect-webhook", "--incoming", incoming, "--outgoing-token", token, "--json")
    assert code == 0 and json.loads(out)["events_by"] == "outgoing webhook"
    box.restore_method("im.notify.system.add")  # the admin can be told (through the webhook)
    assert cli("portals", "recheck", box.member_id)[0] == 0
    shown = _shown(cli, box.member_id)
    assert shown["event_queue"] == "unknown" and shown["events_by"] == "outgoing webhook"

    def poll() -> dict:
        return stack.fire_schedule("ChangePollFunction", "Poll")

    kept = box.ui_deal_add({"TITLE": "Made while blocked"})
    gone = box.ui_deal_add({"TITLE": "Deleted later"})
    box.ui_deal_update(kept, {"TITLE": "Changed while blocked"})
    # Within the grace period: their events may still come, so nothing is judged yet.
    first = poll()
    assert first["missed"] == 0 and _switched(first, box.member_id) is None
    assert mirror.get(box.member_id, str(kept)) is None  # nothing came: the queue is blocked

    sim.clock.advance(31)  # past the grace period (30 s of the portal's clock in this stack)
    missed = poll()
    assert missed["missed"] == 2 and _switched(missed, box.member_id) is None  # one strike: no switch yet
    # ...but nothing waits for a verdict: what was missed is sent at once.
    wait_for(
        lambda: (mirror.get(box.member_id, str(kept)) or {}).get("TITLE") == "Changed while blocked",
        what="the missed add and update",
    )
    wait_for(
        lambda: (mirror.get(box.member_id, str(gone)) or {}).get("TITLE") == "Deleted later",
        what="the other missed add",
    )
    box.ui_deal_update(gone, {"TITLE": "Still no event"})
    sim.clock.advance(31)
    second = poll()
    assert second["missed"] == 1 and _switched(second, box.member_id) == "polling"  # the second strike
    shown = _shown(cli, box.member_id)
    assert shown["event_queue"] == "event_queue_unreachable"
    assert shown["event_queue_label"] == QUEUE_UNREACHABLE
    assert shown["events_by"] == "change polling"
    assert shown["capabilities"]["isolation"]["event_queue"] == "event_queue_unreachable"
    assert shown["capabilities"]["isolation"]["auth_server"] == "authorization_server_unreachable_from_portal"
    code, out = cli("portals", "show", box.member_id)
    assert QUEUE_UNREACHABLE in out and "change polling" in out and token not in out
    code, out = cli("portals", "route", box.member_id, "--json")
    switch = json.loads(out)["history"][-1]
    assert (switch["from"], switch["to"], switch["trigger"]) == ("webhook", "polling", "audit_missed")
    assert switch["evidence"]["detector"] == "change audit" and switch["evidence"]["strikes"] == 2
    wait_for(
        lambda: (mirror.get(box.member_id, str(gone)) or {}).get("TITLE") == "Still no event",
        what="the second missed update",
    )
    box.ui_deal_delete(gone)
    wait_for(lambda: poll() and mirror.get(box.member_id, str(gone)) is None, what="delete by reconciliation")

    # The admin was told once, through the incoming webhook; more rounds and a re-check add nothing.
    assert _switched(poll(), box.member_id) is None
    assert cli("portals", "recheck", box.member_id)[0] == 0
    told = [n for n in box.notifications if QUEUE_UNREACHABLE in n["message"]]
    assert len(told) == 1 and "app-world.json" in told[0]["message"]
    assert not [d for d in sim.deliveries if d.portal == box.domain and d.outcome == "delivered"]

    # The network admin opens the queue: events arrive again, and the route goes back to them.
    box.queue_blocked = False
    box.ui_deal_update(kept, {"TITLE": "Queue open"})
    wait_for(lambda: (mirror.get(box.member_id, str(kept)) or {}).get("TITLE") == "Queue open", what="event")
    sim.clock.advance(31)
    back = poll()
    assert _switched(back, box.member_id) == "webhook"
    shown = _shown(cli, box.member_id)
    assert shown["event_queue"] == "ok" and shown["events_by"] == "outgoing webhook"
    assert shown["delivery"]["last_confirmed_at"] > 0
    assert len([n for n in box.notifications if QUEUE_UNREACHABLE in n["message"]]) == 1
    assert len([n for n in box.notifications if "arrive again" in n["message"]]) == 1


def test_the_audit_keeps_the_outgoing_webhook_when_its_events_arrive(
    sim, stack, store, install_url, events_url, mirror, cli
):
    box = sim.add_portal(profile="box")  # the queue is open
    box.auth_server_blocked = True
    assert sim.install(box.domain, install_url, mode="ui", scope="crm,im,user").status_code == 200
    wait_for(lambda: (store.get(box.member_id) or None) is not None, what="the portal record")
    token = box.add_outgoing_webhook(events_url, DEAL_EVENTS)
    incoming = box.add_incoming_webhook(["crm", "im", "user"])
    code, out = cli("portals", "connect-webhook", "--incoming", incoming, "--outgoing-token", token, "--json")
    assert code == 0, out
    box.restore_method("im.notify.system.add")
    assert cli("portals", "recheck", box.member_id)[0] == 0
    first = stack.fire_schedule("ChangePollFunction", "Poll")  # nothing changed: nothing judged
    assert first["missed"] == 0

    deal = box.ui_deal_add({"TITLE": "Delivered"})
    box.ui_deal_update(deal, {"TITLE": "Delivered again"})
    wait_for(
        lambda: (mirror.get(box.member_id, str(deal)) or {}).get("TITLE") == "Delivered again", what="events"
    )
    sim.clock.advance(31)
    audited = stack.fire_schedule("ChangePollFunction", "Poll")
    assert audited["missed"] == 0 and _switched(audited, box.member_id) is None
    shown = _shown(cli, box.member_id)
    assert shown["event_queue"] == "ok" and shown["events_by"] == "outgoing webhook"
    assert shown["delivery"]["last_confirmed_at"] > 0 and shown["delivery"]["switches"] == 1
    assert not [n for n in box.notifications if "event queue" in n["message"]]


def test_a_webhook_portal_without_an_outgoing_webhook_says_its_queue_is_not_checked(sim, stack, store, cli):
    box = sim.add_portal(profile="box", queue_blocked=True)
    code, out = cli(
        "portals", "connect-webhook", "--incoming", box.add_incoming_webhook(["crm", "im"]), "--json"
    )
    assert code == 0, out
    shown = _shown(cli, json.loads(out)["member_id"])
    assert (
        shown["event_queue"] == "unknown" and "set an outgoing webhook to check" in shown["event_queue_note"]
    )
    assert shown["events_by"] == "change polling" and "watchdog" not in shown
