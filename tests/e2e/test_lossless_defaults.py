"""The blocked-box story with the shipped defaults and nobody at the controls: the stack's schedules
fire by themselves at their template rates, every setting is the template's, and time is real.

A box is installed while its network is open and its delivery probe arrives; then its firewall starts
blocking the event queue. The changes made right after the block — before any detector could know —
and those made later all reach the mirror within 15 minutes, and the route with its evidence shows in
``b24app portals show``. This is the one test that waits for real minutes (about ten): the defaults
are what it proves (docs/delivery.md: detection within 10 minutes).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from b24core.delivery.modes import DeliveryMode, ProbeOutcome
from b24core.delivery.store import DynamoDeliveryStore
from b24sim import Simulator
from b24stack.stack import LocalStack
from tests.e2e.conftest import CLIENT_ID, ROOT, MirrorReader, free_port, wait_for

LIMIT_S = 15 * 60


@pytest.fixture(scope="module")
def default_stack(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A second local stack: only what points it at the simulator is set; schedules on."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    port = free_port()
    env = {
        "B24_CLIENT_ID": CLIENT_ID,
        "B24_OAUTH_URL": sim.oauth_url,
        "B24_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "B24_ALLOW_INSECURE_ENDPOINTS": "1",
        "B24_APP_WORLD_URL": sim.app_world_url,
    }
    with LocalStack(
        ROOT,
        port=port,
        state_dir=tmp_path_factory.mktemp("default-stack"),
        in_memory=True,
        env_overrides=env,
        schedules=True,
    ) as st:
        param = st.resolver.parameter_value("B24ClientSecretParameter") if st.resolver else ""
        st.client("ssm").put_parameter(Name=param, Value=sim._client_secret, Type="SecureString")
        yield st


def _show(stack: LocalStack, capsys: pytest.CaptureFixture[str], member_id: str, *extra: str) -> str:
    from b24cli.main import main

    old = {k: os.environ.get(k) for k in ("B24_LOCAL_STATE_DIR", "B24_STACK_NAME", "B24_TABLE_NAME")}
    os.environ["B24_LOCAL_STATE_DIR"] = str(stack.state_dir)
    for key in ("B24_STACK_NAME", "B24_TABLE_NAME"):
        os.environ.pop(key, None)
    try:
        capsys.readouterr()
        assert main(["portals", *extra, member_id]) == 0
        return capsys.readouterr().out
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.timeout(25 * 60)
def test_with_the_defaults_every_change_of_a_box_blocked_later_reaches_the_mirror_within_15_minutes(
    sim: Simulator, default_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = default_stack
    delivery = DynamoDeliveryStore(stack.resources["AppTable"], stack.region, stack.dynamodb_endpoint)
    mirror = MirrorReader(stack)
    box = sim.add_portal(profile="box")
    box.restore_method("im.notify.system.add")

    def title(deal_id: int) -> Any:
        return (mirror.get(box.member_id, str(deal_id)) or {}).get("TITLE")

    assert sim.install(box.domain, f"{stack.gateway_url}/install", mode="ui").status_code == 200
    # The install frame's probe is deferred (no events before BX24.installFinish); the probe schedule
    # (every minute) sends it again within a minute or two, and it arrives.
    wait_for(
        lambda: (s := delivery.get(box.member_id)) is not None and s.probe_outcome == ProbeOutcome.ARRIVED,
        timeout=240,
        what="the first probe after installFinish arriving",
    )
    before = box.ui_deal_add({"TITLE": "Before the block"})
    wait_for(lambda: title(before) == "Before the block", timeout=60, what="an online event")

    blocked_at = time.monotonic()
    box.queue_blocked = True  # the firewall starts blocking; nothing in the bundle knows
    right_after = box.ui_deal_add({"TITLE": "Right after the block"})
    box.ui_deal_update(before, {"TITLE": "Changed right after the block"})
    time.sleep(90)
    meanwhile = box.ui_deal_add({"TITLE": "Made while undetected"})

    def left() -> float:
        return max(1.0, LIMIT_S - (time.monotonic() - blocked_at))

    wait_for(lambda: title(right_after) == "Right after the block", timeout=left(), what="the first add")
    wait_for(lambda: title(before) == "Changed right after the block", timeout=left(), what="the update")
    wait_for(lambda: title(meanwhile) == "Made while undetected", timeout=left(), what="the later add")
    wait_for(
        lambda: delivery.get(box.member_id).mode != DeliveryMode.ONLINE,
        timeout=left(),
        what="the route leaving online",
    )
    after = box.ui_deal_add({"TITLE": "After the switch"})
    wait_for(lambda: title(after) == "After the switch", timeout=left(), what="a change after the switch")
    elapsed = time.monotonic() - blocked_at
    with capsys.disabled():
        print(f"\nevery change in the mirror {elapsed:.0f} s after the block began (limit {LIMIT_S} s)")

    shown = json.loads(_show(stack, capsys, box.member_id, "show", "--json"))
    assert shown["delivery"]["mode"] in ("pull", "polling") and shown["delivery"]["switches"] >= 1
    route = json.loads(_show(stack, capsys, box.member_id, "route", "--json"))
    switch = route["history"][-1]
    assert switch["from"] == "online" and switch["evidence"]["detector"] in ("delivery probe", "change audit")
    assert [n for n in box.notifications if "event queue" in n["message"]]
