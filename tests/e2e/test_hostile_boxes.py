"""No tenant can hurt another: a hostile box (garbage in every paging and time field, wrong types), a
slow box (answers dripping a byte at a time), and a box answering 50 MiB, beside a normal portal.

The normal portal's changes reach the mirror as if it were alone (its events are never failed or sent
back), and the re-check and change-poll rounds finish for every portal."""

from __future__ import annotations

import json
import time

from b24core.capabilities.store import DynamoCapabilityStore
from b24sim.misbehave import Misbehaviour
from tests.e2e.conftest import wait_for
from tests.e2e.test_webhook_connect import cli  # noqa: F401 - the CLI fixture

SCOPES = "crm,im,user"


def _box(sim, install_url, **kw):
    box = sim.add_portal(profile="box", **kw)
    assert sim.install(box.domain, install_url, mode="ui", scope=SCOPES).status_code == 200
    return box


def _drop_from_dlq(stack, member_ids: set[str]) -> None:
    sqs = stack.client("sqs")
    url = stack.resources["EventsDLQ"]
    for _ in range(50):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=2).get(
            "Messages", []
        )
        mine = [m for m in got if json.loads(m["Body"]).get("member_id") in member_ids]
        for m in mine:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        for m in got:
            if m not in mine:
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
        if not mine:
            return


def _worker_lines_about(stack, member_id: str) -> list[dict]:
    out = []
    for path in stack.logs_dir.rglob("EventWorkerFunction*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and member_id in line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    return out


def test_hostile_slow_and_huge_boxes_do_not_hurt_a_normal_portal(sim, stack, store, mirror, install_url, cli):  # noqa: F811
    normal = sim.add_portal(profile="cloud")
    assert sim.install(normal.domain, install_url, mode="ui", scope=SCOPES).status_code == 200
    hostile, slow, huge = (_box(sim, install_url) for _ in range(3))
    # Two boxes cut off from both cloud services, served by change polling: one normal, one hostile.
    polled = []
    for _ in range(2):
        box = _box(sim, install_url, queue_blocked=True)
        box.auth_server_blocked = True
        code, _out = cli("portals", "connect-webhook", "--incoming", box.add_incoming_webhook(["crm", "im"]))
        assert code == 0
        polled.append(box)
    polled_ok, polled_bad = polled
    stack.wait_idle()

    hostile.misbehave = Misbehaviour(hostile=True)
    polled_bad.misbehave = Misbehaviour(hostile=True)
    slow.misbehave = Misbehaviour(drip_s=0.05)  # ~10 s per answer, every read quick
    huge.misbehave = Misbehaviour(huge_bytes=50 * 1024 * 1024)
    try:
        # Everyone changes things at once; the events share the queue and the worker's batches.
        for box in (hostile, slow, huge):
            for i in range(3):
                box.ui_deal_add({"TITLE": f"{box.domain} {i}"})
        deals = [normal.ui_deal_add({"TITLE": f"normal {i}"}) for i in range(5)]
        wait_for(
            lambda: all(mirror.get(normal.member_id, str(d)) for d in deals),
            timeout=60,
            what="the normal portal's deals in the mirror",
        )
        # Its events were never failed, retried or sent back because of the others.
        troubled = [
            line
            for line in _worker_lines_about(stack, normal.member_id)
            if line.get("outcome") in ("retry", "deferred", "dropped") or line.get("level") == "ERROR"
        ]
        assert troubled == []

        # The re-check round: every portal due; it finishes and the normal portal is re-checked.
        caps = DynamoCapabilityStore(stack.resources["AppTable"], stack.region, stack.dynamodb_endpoint)
        everyone = (normal, hostile, slow, huge, polled_ok, polled_bad)
        for p in everyone:
            caps.schedule_recheck(p.member_id, int(time.time()) - 1)
        report = stack.fire_schedule("CapabilityCheckFunction", "Recheck")
        assert report["rechecked"] + report["failed"] + report["skipped"] == len(everyone), report
        due = caps.recheck_due_at(normal.member_id)
        assert due is None or due > time.time()  # done, not left for later

        # The change-poll round: the hostile box's garbage does not stop the normal box's changes.
        polled_deal = polled_ok.ui_deal_add({"TITLE": "polled beside a hostile box"})
        polled_bad.ui_deal_add({"TITLE": "hostile"})

        def poll_round():
            result = stack.fire_schedule("ChangePollFunction", "Poll")
            assert isinstance(result, dict) and "polled" in result
            return mirror.get(polled_ok.member_id, str(polled_deal))

        wait_for(poll_round, timeout=60, what="the polled box's change in the mirror")
    finally:
        # Put the boxes right and take their failed events out of the DLQ: the tests after this one
        # count what they find there.
        bad_boxes = (hostile, slow, huge, polled_bad)
        for box in bad_boxes:
            box.misbehave = Misbehaviour()
        stack.wait_idle(timeout=120)
        _drop_from_dlq(stack, {box.member_id for box in bad_boxes})
