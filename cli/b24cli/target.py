"""Which stack the CLI talks to: the local one (``.local/stack.json`` written by ``make run``), or a
deployed one found by CloudFormation stack name (``--stack`` / ``B24_STACK_NAME``) or by table name
(``B24_TABLE_NAME``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class TargetError(RuntimeError):
    pass


@dataclass(frozen=True)
class Target:
    table_name: str
    region: str
    dynamodb_endpoint: str | None
    description: str
    events_queue_url: str = ""
    events_dlq_url: str = ""
    sqs_endpoint: str | None = None
    capability_function: str = ""
    lambda_endpoint: str | None = None
    #: The stack's TokenKey: the CLI may seal a webhook code it connects, never open anything.
    token_key_id: str = ""

    def sqs(self) -> Any:
        import boto3

        return boto3.client("sqs", region_name=self.region, endpoint_url=self.sqs_endpoint)

    def kms(self) -> Any:
        import boto3

        return boto3.client("kms", region_name=self.region, endpoint_url=self.sqs_endpoint)  # moto locally


def stack_outputs(stack: str, region: str) -> dict[str, str]:
    """A deployed stack's outputs (CloudFormation), or a clear error."""
    import boto3

    cfn = boto3.client("cloudformation", region_name=region)
    try:
        outputs = cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    except Exception as exc:
        raise TargetError(f"cannot read stack {stack!r}: {exc}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in outputs}


def find_target(stack: str | None, state_dir: Path | None = None) -> Target:
    stack = stack or os.environ.get("B24_STACK_NAME")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if stack:
        values = stack_outputs(stack, region)
        if "TableName" not in values:
            raise TargetError(f"stack {stack!r} has no TableName output")
        return Target(
            values["TableName"],
            region,
            None,
            f"stack {stack}",
            events_queue_url=values.get("EventsQueueUrl", ""),
            events_dlq_url=values.get("EventsDLQUrl", ""),
            capability_function=values.get("CapabilityCheckFunctionName", ""),
            token_key_id=values.get("TokenKeyId", ""),
        )
    if os.environ.get("B24_TABLE_NAME"):
        return Target(
            os.environ["B24_TABLE_NAME"],
            region,
            os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"),
            "table from B24_TABLE_NAME",
        )
    state_dir = state_dir or Path(os.environ.get("B24_LOCAL_STATE_DIR") or ".local")
    stack_file = state_dir / "stack.json"
    if stack_file.exists():
        info = json.loads(stack_file.read_text())
        resources = info.get("resources", {})
        table = next((v for k, v in resources.items() if k == "AppTable"), None)
        if table is None:
            raise TargetError(f"{stack_file} names no AppTable")
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        return Target(
            str(table),
            str(info.get("region") or region),
            str(info["dynamodb_endpoint"]),
            "local stack (make run)",
            events_queue_url=str(resources.get("EventsQueue", "")),
            events_dlq_url=str(resources.get("EventsDLQ", "")),
            sqs_endpoint=str(info.get("sqs_endpoint") or "") or None,
            capability_function=str(resources.get("CapabilityCheckFunction", "")),
            lambda_endpoint=str(info.get("invoke_url") or "") or None,
            token_key_id=str(resources.get("TokenKey", "")),
        )
    raise TargetError(
        "no stack found: start `make run` in this directory, or pass --stack NAME (or set B24_STACK_NAME)"
    )
