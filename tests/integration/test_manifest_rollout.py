"""A manifest change reaches a portal that already had everything: after the deploy, the scheduled
re-check walks the portals (gsi1 in DynamoDB Local), re-checks the installed portal in the Bitrix24
simulator and binds the new event there; the next run asks nobody."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from b24core.capabilities.manifest import Manifest
from b24core.capabilities.rollout import FINGERPRINT
from b24core.capabilities.runner import CapabilityRunner
from b24core.capabilities.store import DynamoCapabilityStore
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.store import DynamoPortalStore
from b24core.tokens.client import PortalClient
from b24sim import Simulator

HANDLER = "https://app.example.com/events"


def manifest(*events: str) -> Manifest:
    return Manifest.from_dict(
        {
            "scopes": ["crm"],
            "features": {
                "deals": {
                    "required": True,
                    "scopes": ["crm"],
                    "methods": ["crm.deal.get"],
                    "events": list(events),
                }
            },
        }
    )


OLD = manifest("ONCRMDEALADD", "ONCRMDEALUPDATE")
NEW = manifest("ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE")


@pytest.fixture
def table(services: Any) -> Iterator[str]:
    """A table of its own, shaped like AppTable: the walk visits every portal of its table."""
    ddb = boto3.client("dynamodb", endpoint_url=services.dynamodb_endpoint, region_name=services.region)
    shape = ddb.describe_table(TableName=services.resources["AppTable"])["Table"]
    name = f"rollout-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        KeySchema=shape["KeySchema"],
        AttributeDefinitions=shape["AttributeDefinitions"],
        GlobalSecondaryIndexes=[
            {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
            for g in shape.get("GlobalSecondaryIndexes", [])
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    ddb.delete_table(TableName=name)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator("local.rollout-test", "rollout-test-secret") as s:
        yield s


def test_a_manifest_change_rebinds_an_installed_portal(services, table, sim):
    box = sim.add_portal(profile="box")
    sim.install_silently(box.domain)
    tokens = sim.issue_tokens(box.domain)
    portals = DynamoPortalStore(table, services.region, services.dynamodb_endpoint)
    caps = DynamoCapabilityStore(table, services.region, services.dynamodb_endpoint)
    portals.save(
        Portal(
            member_id=box.member_id,
            domain=box.domain,
            client_endpoint=box.client_endpoint,
            state=PortalState.ACTIVE,
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
            access_expires_at=2**31,
            installed_at=1,
            user_id="1",
        )
    )
    clients: list[str] = []

    def runner(m: Manifest) -> CapabilityRunner:
        def client(portal: Portal, timeout: float) -> PortalClient:
            clients.append(portal.member_id)
            return PortalClient(portal, keeper=None)  # type: ignore[arg-type]  # its token never expires

        return CapabilityRunner(portals, caps, m, client, recheck_interval_s=7 * 86400, recheck_soon_s=3600)

    def bound() -> set[str]:
        return {b.event for b in sim.portal(box.domain).bindings if b.handler == HANDLER}

    runner(OLD).check(box.member_id, HANDLER, trigger="install")
    assert bound() >= {"ONCRMDEALADD", "ONCRMDEALUPDATE"} and "ONCRMDEALDELETE" not in bound()
    assert caps.recheck_due_at(box.member_id) is None  # it had everything: the old rules never asked again
    assert runner(OLD).recheck_due(HANDLER)["rechecked"] == 0

    result = runner(NEW).recheck_due(HANDLER)  # the release with the new manifest is deployed
    assert result["manifest_marked"] == 1 and result["rechecked"] == 1 and result["manifest_done"]
    assert "ONCRMDEALDELETE" in bound()
    stored = portals.get(box.member_id)
    assert stored is not None and stored.capabilities[FINGERPRINT] == NEW.fingerprint
    assert caps.rollout()["fingerprint"] == NEW.fingerprint and caps.rollout()["done"]

    asked = len(clients)
    again = runner(NEW).recheck_due(HANDLER)
    assert again["manifest_marked"] == 0 and again["rechecked"] == 0 and len(clients) == asked
