"""A new app is written without touching the bundle: a manifest and two handlers in a folder of its
own, run on the local stack end to end (install, hook, events, storage)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from b24core.portals.app_data import DynamoAppStorage
from b24stack.procs import free_port
from b24stack.stack import LocalStack
from tests.e2e.conftest import ROOT, stack_env, wait_for

MANIFEST = {
    "title": "Deal counter",
    "scopes": ["crm"],
    "features": {
        "deals": {
            "required": True,
            "scopes": ["crm"],
            "methods": ["crm.deal.get"],
            "events": ["ONCRMDEALADD", "ONCRMDEALUPDATE"],
        }
    },
}

APP = """
from b24core import B24App, Context, Event

app = B24App(manifest="b24app.manifest.json")


@app.installed
def hello(ctx: Context) -> None:
    ctx.storage.put("installed", {"domain": ctx.portal.domain})


@app.event("ONCRMDEALADD", read="crm.deal.get", idempotent=True)
def added(event: Event, ctx: Context) -> None:
    ctx.storage.put(f"title/{event.object['ID']}", {"title": event.object["TITLE"]})


@app.event("ONCRMDEALUPDATE")
def updated(event: Event, ctx: Context) -> None:
    seen = ctx.storage.get("updates") or {"n": 0}
    ctx.storage.put("updates", {"n": seen["n"] + 1})
"""


def write_app(folder: Path) -> Path:
    package = folder / "counter_app"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "b24app.manifest.json").write_text(json.dumps(MANIFEST))
    (package / "app.py").write_text(textwrap.dedent(APP))
    return folder


def test_an_app_in_its_own_folder_runs_on_the_local_stack(sim, tmp_path):
    apps = write_app(tmp_path / "apps")
    port = free_port()
    env = {**stack_env(sim, port), "B24_APP": "counter_app.app:app"}
    with LocalStack(
        ROOT,
        port=port,
        state_dir=tmp_path / "state",
        in_memory=True,
        env_overrides=env,
        schedules=False,
        layer_dirs={"AppLayer": apps},
    ) as stack:
        param = stack.resolver.parameter_value("B24ClientSecretParameter") if stack.resolver else ""
        stack.client("ssm").put_parameter(Name=param, Value=sim._client_secret, Type="SecureString")
        portal = sim.add_portal(profile="cloud")
        assert sim.install(portal.domain, f"{stack.gateway_url}/install", mode="ui").status_code == 200
        # the manifest the stack checked and bound is the app's own, from its folder
        bound = {b.event for b in portal.bindings}
        assert {"ONCRMDEALADD", "ONCRMDEALUPDATE"} <= bound and "ONEXTERNALCALLSTART" not in bound
        storage = DynamoAppStorage(
            stack.services.client("dynamodb"), stack.resources["AppTable"], portal.member_id
        )
        assert storage.get("installed") == {"domain": portal.domain}
        deal_id = portal.ui_deal_add({"TITLE": "First"})
        wait_for(lambda: storage.get(f"title/{deal_id}") == {"title": "First"}, what="the add handler's item")
        portal.ui_deal_update(deal_id, {"TITLE": "Second"})
        wait_for(lambda: (storage.get("updates") or {}).get("n") == 1, what="the update handler's count")
