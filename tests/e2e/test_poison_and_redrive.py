"""A poison event reaches the DLQ after N receives without holding anything else up; redrive returns it."""

from __future__ import annotations

import json

from b24cli.main import main as cli
from tests.e2e.conftest import wait_for


def depth(stack, queue: str) -> int:
    attrs = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.resources[queue],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _drop_other(stack) -> None:
    sqs, url = stack.client("sqs"), stack.resources["EventsDLQ"]
    for _ in range(20):
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            if json.loads(m["Body"])["member_id"] == "someone-else":
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                return
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)


def run_cli(args, monkeypatch, capsys, stack) -> str:
    monkeypatch.setenv("B24_LOCAL_STATE_DIR", str(stack.state_dir))
    capsys.readouterr()
    assert cli(args) == 0
    return capsys.readouterr().out


def test_poison_goes_to_the_dlq_and_redrive_brings_it_back(
    sim, stack, mirror, install_url, monkeypatch, capsys
):
    portal = sim.add_portal(profile="cloud")
    assert sim.install(portal.domain, install_url, mode="ui").status_code == 200
    bad = portal.ui_deal_add({"TITLE": "will be poison"})
    wait_for(lambda: mirror.get(portal.member_id, str(bad)) is not None, what="first version mirrored")
    portal.poison_deals.add(bad)
    portal.ui_deal_update(bad, {"TITLE": "poisoned update"})
    good = portal.ui_deal_add({"TITLE": "unaffected"})
    wait_for(lambda: mirror.get(portal.member_id, str(good)) is not None, what="other events not held up")
    wait_for(lambda: depth(stack, "EventsDLQ") == 1, timeout=60, what="the poison event in the DLQ")
    assert mirror.get(portal.member_id, str(bad))["TITLE"] == "will be poison"

    # The operator sees it on the portal: its events were received and processed, one waits in the DLQ
    # (counted by looking at the DLQ's messages, which are left where they were).
    other = {"v": 1, "event": "ONCRMDEALUPDATE", "member_id": "someone-else", "domain": "x", "data": {}}
    stack.client("sqs").send_message(QueueUrl=stack.resources["EventsDLQ"], MessageBody=json.dumps(other))
    shown = json.loads(run_cli(["portals", "show", portal.member_id, "--json"], monkeypatch, capsys, stack))
    health = shown["health"]
    assert health["dlq"]["events"] == 1 and health["dlq"]["by_event"] == {"ONCRMDEALUPDATE": 1}
    assert health["dlq"]["scanned"] == 2 and not health["dlq"]["capped"]
    assert 0 < health["last_event_received_at"] <= health["last_event_processed_at"]
    text = run_cli(["portals", "show", portal.member_id], monkeypatch, capsys, stack)
    assert "events in the DLQ" in text and "1 of 2 looked at - 1 ONCRMDEALUPDATE" in text
    assert (
        "last event processed" in text
        and "never" not in text.split("last event processed")[1].splitlines()[0]
    )
    assert depth(stack, "EventsDLQ") == 2  # looked at, not taken
    _drop_other(stack)

    out = run_cli(["events", "redrive", "--dry-run", "--json"], monkeypatch, capsys, stack)
    report = json.loads(out)
    assert report["seen"] == 1 and report["moved"] == 0
    assert report["events"][0]["object_id"] == str(bad)
    assert depth(stack, "EventsDLQ") == 1

    portal.poison_deals.clear()  # the cause is fixed
    out = run_cli(["events", "redrive"], monkeypatch, capsys, stack)
    assert "returned 1 event" in out
    wait_for(
        lambda: mirror.get(portal.member_id, str(bad))["TITLE"] == "poisoned update", what="redriven event"
    )
    assert depth(stack, "EventsDLQ") == 0

    out = run_cli(["mirror", "show", portal.member_id, str(bad), "--json"], monkeypatch, capsys, stack)
    assert json.loads(out)["TITLE"] == "poisoned update"
