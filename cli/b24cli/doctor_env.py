"""What ``b24app doctor`` needs to know about the stack it checks, deployed or local.

Deployed: the CloudFormation stack's parameters and outputs, its EventBridge Scheduler schedules (by
their physical ids), its TokenRefreshFunction. Local: ``stack.json`` (``make run`` / the tests' stack),
whose ``parameters`` the stack resolved exactly as functions see them, the moto server for SSM, KMS
and SQS, and the stack's Invoke API for its schedules and functions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from b24cli.target import Target, TargetError, find_target

SCHEDULE_TYPE = "AWS::Scheduler::Schedule"


@dataclass
class StackInfo:
    target: Target
    parameters: dict[str, str]
    outputs: dict[str, str] = field(default_factory=dict)
    local: bool = False
    stack_name: str = ""
    #: The moto server locally (SSM, KMS, SQS); None in AWS.
    endpoint: str | None = None
    invoke_url: str | None = None
    function_names: dict[str, str] = field(default_factory=dict)
    schedule_note: str = ""
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        import boto3

        if service not in self._clients:
            endpoint = self.target.dynamodb_endpoint if service == "dynamodb" else self.endpoint
            make: Any = boto3.client  # the service is chosen at run time
            self._clients[service] = make(service, region_name=self.target.region, endpoint_url=endpoint)
        return self._clients[service]

    def schedules(self) -> dict[str, bool]:
        """Schedule name -> enabled."""
        if self.local:
            return self._local_schedules()
        cfn, scheduler = self.client("cloudformation"), self.client("scheduler")
        found: dict[str, bool] = {}
        for page in cfn.get_paginator("list_stack_resources").paginate(StackName=self.stack_name):
            for res in page["StackResourceSummaries"]:
                if res["ResourceType"] == SCHEDULE_TYPE:
                    name = str(res["PhysicalResourceId"])
                    found[name] = scheduler.get_schedule(Name=name).get("State") == "ENABLED"
        return found

    def _local_schedules(self) -> dict[str, bool]:
        import httpx

        if not self.invoke_url:
            raise TargetError("the local stack names no invoke_url")
        status = httpx.get(f"{self.invoke_url}/_local/status", timeout=10).json()
        if not status.get("timed_schedules"):
            self.schedule_note = " (local: the timer is off, schedules are fired by hand)"
        return {
            f"{s['function']}.{s['event']}": bool(s.get("enabled")) for s in status.get("schedules") or []
        }

    def invoke_refresh_function(self, payload: dict[str, Any]) -> dict[str, Any]:
        """TokenRefreshFunction, synchronously (its ``smoke`` action tests a portal's tokens)."""
        import boto3

        name = self.function_names.get("TokenRefreshFunction")
        if not name:
            raise TargetError("the stack names no TokenRefreshFunction (redeploy)")
        client = boto3.client("lambda", region_name=self.target.region, endpoint_url=self.invoke_url)
        response = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
        body = json.loads(response["Payload"].read() or b"{}")
        if response.get("FunctionError"):
            raise TargetError(
                f"TokenRefreshFunction failed: {body.get('errorType')}: {body.get('errorMessage')}"
            )
        return body if isinstance(body, dict) else {}


def stack_info(stack: str | None) -> StackInfo:
    target = find_target(stack)
    stack = stack or os.environ.get("B24_STACK_NAME")
    if stack:
        import boto3

        cfn = boto3.client("cloudformation", region_name=target.region)
        described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
        parameters = {
            p["ParameterKey"]: str(p.get("ParameterValue", "")) for p in described.get("Parameters", [])
        }
        # Parameters left at their default are listed too; older stacks lack the new outputs.
        parameters.setdefault("B24OAuthUrl", outputs.get("B24OAuthUrl", ""))
        return StackInfo(
            target,
            parameters,
            outputs,
            stack_name=stack,
            function_names={"TokenRefreshFunction": outputs.get("TokenRefreshFunctionName", "")},
        )
    stack_file = Path(os.environ.get("B24_LOCAL_STATE_DIR") or ".local") / "stack.json"
    if not stack_file.exists():
        raise TargetError(
            "doctor checks a stack: pass --stack NAME (or set B24_STACK_NAME), or start `make run`"
        )
    info = json.loads(stack_file.read_text())
    resources = info.get("resources") or {}
    return StackInfo(
        target,
        {k: str(v) for k, v in (info.get("parameters") or {}).items()},
        local=True,
        endpoint=str(info.get("sqs_endpoint") or "") or None,
        invoke_url=str(info.get("invoke_url") or "") or None,
        function_names={"TokenRefreshFunction": str(resources.get("TokenRefreshFunction", ""))},
    )


__all__ = ["StackInfo", "stack_info"]
