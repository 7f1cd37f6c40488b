"""Simulator mode: a simulated authorization server, a cloud portal and an outdated box portal.

The app is installed into both (the cloud one through the install frame, the box one through the
ONAPPINSTALL callback), so a newcomer has something real to look at within seconds.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from typing import Any

from b24sim import Simulator
from b24sim.entities import SPECS
from b24stack.__main__ import Hook
from b24stack.stack import LocalStack

CLIENT_ID = "local.b24app"
# Fixed member_ids keep the same portal records across restarts (the table persists under .local/).
CLOUD_MEMBER = "5151c0de000000000000000000c10d01"
BOX_MEMBER = "5151c0de000000000000000000b0b001"


class SimulatorHook(Hook):
    def __init__(self) -> None:
        self.sim: Simulator | None = None
        self.portals: list[tuple[str, Any]] = []

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--no-simulator", action="store_true", help="never start the Bitrix24 simulator")

    def before_start(self, stack: LocalStack, args: argparse.Namespace) -> None:
        passthrough = (
            "B24_CLIENT_SECRET",
            "B24_PUBLIC_URL",
            "B24_ALLOW_INSECURE_ENDPOINTS",
            "B24_MAX_BODY_BYTES",
            "B24_APP",  # the app to run (apps/<name>), e.g. B24_APP=lead_rotation.app:app make run
        )
        stack.env_overrides.update({k: os.environ[k] for k in passthrough if os.environ.get(k)})
        if os.environ.get("B24_CLIENT_ID"):
            return
        if args.no_simulator:  # template.yaml has no default client_id: a real portal needs the real one
            raise SystemExit("b24run: --no-simulator needs B24_CLIENT_ID (the app's client_id from Bitrix24)")
        self.sim = Simulator(CLIENT_ID, secrets.token_hex(16)).start()
        public = f"http://{stack.host}:{stack.port}" if stack.port else ""
        stack.env_overrides.update(
            {
                "B24_CLIENT_ID": CLIENT_ID,
                "B24_CLIENT_SECRET": self.sim._client_secret,
                "B24_OAUTH_URL": self.sim.oauth_url,
                "B24_PUBLIC_URL": public,
                "B24_ALLOW_INSECURE_ENDPOINTS": "1",
                "B24_APP_WORLD_URL": self.sim.app_world_url,  # the queue servers' list, served locally
            }
        )

    def after_ready(self, stack: LocalStack) -> None:
        if self.sim is None:
            return
        # The simulator's secret also sits where AWS keeps it (SSM, on the moto server), so
        # `b24app doctor` checks a local stack exactly as a deployed one.
        name = stack.resolver.parameter_value("B24ClientSecretParameter") if stack.resolver else ""
        if name:
            stack.client("ssm").put_parameter(
                Name=name, Value=self.sim._client_secret, Type="SecureString", Overwrite=True
            )
        install_url = f"{stack.gateway_url}/install"
        cloud = self.sim.add_portal(profile="cloud", member_id=CLOUD_MEMBER)
        box = self.sim.add_portal(profile="box", member_id=BOX_MEMBER)
        for label, portal, mode in (("cloud", cloud, "ui"), ("box", box, "event")):
            resp = self.sim.install(portal.domain, install_url, mode=mode)
            status = resp.status_code if resp is not None else "no answer"
            print(
                f"simulator: installed the app into the {label} portal {portal.domain} via {mode} "
                f"-> HTTP {status}",
                file=sys.stderr,
            )
            self.portals.append((label, portal))

    def summary(self, stack: LocalStack) -> str | None:
        if self.sim is None:
            return None
        return f"Bitrix24 simulator at {self.sim.url}"

    def hint(self, stack: LocalStack) -> str | None:
        if self.sim is None:
            return None
        lines = ["", "Try next (in another terminal, from this directory):"]
        lines.append("  .venv/bin/b24app portals list")
        for label, portal in self.portals:
            lines.append(f"  .venv/bin/b24app portals show {portal.member_id}      # the {label} portal")
        if self.portals:
            _, cloud = self.portals[0]
            sim = self.sim.url
            base = f"{sim}/_sim/portals/{cloud.domain}/objects"
            post = "curl -s -X POST -H 'content-type: application/json'"
            lines.append(
                "  # a user changes something in the cloud portal; its event flows /events -> SQS -> worker"
            )
            lines.append(
                "  # (add: POST .../objects/KIND, update: POST .../objects/KIND/ID, delete: DELETE the same):"
            )
            for kind, spec in SPECS.items():
                field = "TITLE" if "TITLE" in spec.fields else "NAME"
                lines.append(f'  {post} -d \'{{"{field}":"First"}}\' {base}/{kind}     # {spec.add}')
            lines += [
                f'  {post} -d \'{{"STAGE_ID":"WON"}}\' {base}/crm.deal/1     # ONCRMDEALUPDATE',
                f"  curl -s -X DELETE {base}/tasks.task/1     # ONTASKDELETE",
                f"  curl -s {sim}/_sim/deliveries        # what the simulated event queue delivered",
                f"  curl -s {stack.gateway_url}/health",
            ]
        lines.append("Ctrl-C stops everything.")
        return "\n".join(lines)

    def after_stop(self, stack: LocalStack) -> None:
        if self.sim is not None:
            self.sim.stop()
