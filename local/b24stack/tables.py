"""DynamoDB tables as template.yaml describes them: the CreateTable request the local stack sends, and
scratch tables of the same shape under a fresh name.

A scratch table is for a benchmark or a test that fills a table of its own (a fleet of thousands of
portals, a sweep that must see no other test's portals) yet must stay the shape the template gives
AppTable: keys and indexes come from the template, never from a copy of it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Protocol

from .intrinsics import Resolver
from .template import Template, load_template

__all__ = ["create_request", "scratch_table"]


class Services(Protocol):
    """What a scratch table needs of the running services (b24stack.services.LocalServices)."""

    region: str

    def client(self, service: str, **config: Any) -> Any: ...


def _throughput(value: Any) -> dict[str, int]:
    value = value or {}
    return {
        "ReadCapacityUnits": int(value.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(value.get("WriteCapacityUnits", 5)),
    }


def _index(spec: dict[str, Any], provisioned: bool) -> dict[str, Any]:
    index: dict[str, Any] = {
        "IndexName": spec["IndexName"],
        "KeySchema": spec["KeySchema"],
        "Projection": spec.get("Projection") or {"ProjectionType": "ALL"},
    }
    if provisioned:
        index["ProvisionedThroughput"] = _throughput(spec.get("ProvisionedThroughput"))
    return index


def _provisioned(props: dict[str, Any]) -> bool:
    return str(props.get("BillingMode", "PROVISIONED")).upper() != "PAY_PER_REQUEST"


def global_indexes(props: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's GSIs as CreateTable/UpdateTable take them (the local stack adds missing ones)."""
    return [_index(g, _provisioned(props)) for g in props.get("GlobalSecondaryIndexes") or []]


def create_request(props: dict[str, Any], name: str) -> dict[str, Any]:
    """CreateTable's arguments for a table of the template's resolved ``props`` named ``name``."""
    provisioned = _provisioned(props)
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": "PROVISIONED" if provisioned else "PAY_PER_REQUEST",
    }
    if provisioned:
        request["ProvisionedThroughput"] = _throughput(props.get("ProvisionedThroughput"))
    gsis = global_indexes(props)
    if gsis:
        request["GlobalSecondaryIndexes"] = gsis
    lsis = [_index(i, False) for i in props.get("LocalSecondaryIndexes") or []]
    if lsis:
        request["LocalSecondaryIndexes"] = lsis
    stream = props.get("StreamSpecification") or {}
    if stream.get("StreamViewType"):
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    return request


def scratch_table(
    services: Services, template: Template | Path | str, prefix: str, logical_id: str = "AppTable"
) -> str:
    """Create an empty table shaped like the template's ``logical_id`` (keys, indexes) in ``services``'
    DynamoDB Local under a fresh name ``<prefix>-<random>``, and return the name."""
    tmpl = template if isinstance(template, Template) else load_template(template)
    props = Resolver(tmpl, region=services.region, environ=dict(os.environ)).resolve(
        tmpl.properties(logical_id)
    )
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    services.client("dynamodb").create_table(**create_request(props, name))
    return name
