"""Does each function's IAM role allow every AWS call its code makes? (the local stack enforces none)

``calls`` come from ``b24stack.aws_calls`` (recorded during a run). The roles come from template.yaml
translated by the SAM translator itself, so policy templates (``SQSSendMessagePolicy``,
``LambdaInvokePolicy``...) expand exactly as CloudFormation will see them; their intrinsics are
resolved with the local stack's names, account and region. A small evaluator then decides each call:
an explicit Deny wins, else some Allow whose Action and Resource patterns match. Conditions are not
evaluated (a conditional Allow counts as an Allow: the check proves grants are not missing, not that
conditions are tight).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .template import parse_template

#: API operations whose IAM action has another name.
ACTION_ALIASES = {
    ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    ("sqs", "DeleteMessageBatch"): "sqs:DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "sqs:ChangeMessageVisibility",
    ("lambda", "Invoke"): "lambda:InvokeFunction",
    ("lambda", "InvokeAsync"): "lambda:InvokeFunction",
}
#: IAM has no action for a DynamoDB transaction: it evaluates each contained action as its single-item
#: operation ("Using IAM with DynamoDB transactions", DynamoDB developer guide).
TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}
#: Actions that support no resource-level permission: only these may be granted on "*"
#: (service authorization reference; logs: the basic execution role SAM attaches).
NO_RESOURCE_LEVEL = frozenset(
    {
        "cloudwatch:PutMetricData",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "sqs:ListQueues",
        "kms:GenerateRandom",
        "ssm:DescribeParameters",
    }
)


@dataclass(frozen=True)
class Call:
    function: str
    action: str
    resource: str


def requests_of(function: str, line: dict[str, Any], region: str, account: str) -> list[Call]:
    """The (action, resource ARN) pairs IAM evaluates for one recorded call."""
    service = str(line.get("signing") or line.get("service"))
    operation = str(line["operation"])
    action = ACTION_ALIASES.get((service, operation), f"{service}:{operation}")

    def arn(kind: str, resource: str) -> str:
        return f"arn:aws:{kind}:{region}:{account}:{resource}"

    resources: list[str] = []
    if service == "dynamodb":
        tables = [line["TableName"]] if "TableName" in line else list(line.get("Tables") or [])
        for table in tables:
            base = arn("dynamodb", f"table/{table}")
            resources.append(f"{base}/index/{line['IndexName']}" if "IndexName" in line else base)
    elif service == "sqs" and "QueueUrl" in line:
        resources.append(arn("sqs", str(line["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1]))
    elif service == "lambda" and "FunctionName" in line:
        name = str(line["FunctionName"])
        resources.append(name if name.startswith("arn:") else arn("lambda", f"function:{name}"))
    elif service == "ssm" and "Name" in line:
        name = str(line["Name"])
        resources.append(arn("ssm", f"parameter{name if name.startswith('/') else '/' + name}"))
    elif service == "kms" and "KeyId" in line:
        key = str(line["KeyId"])
        resources.append(key if key.startswith("arn:") else arn("kms", f"key/{key}"))
    elif service == "sns" and ("TopicArn" in line or "TargetArn" in line):
        resources.append(str(line.get("TopicArn") or line.get("TargetArn")))
    elif service == "secretsmanager" and "SecretId" in line:
        resources.append(arn("secretsmanager", f"secret:{line['SecretId']}"))
    if service == "dynamodb" and operation in ("TransactWriteItems", "TransactGetItems"):
        actions = [TRANSACT_ACTIONS[k] for k in line.get("TransactOps") or () if k in TRANSACT_ACTIONS]
        return [Call(function, a, r) for a in actions or [action] for r in resources or ["*"]]
    return [Call(function, action, r) for r in resources or ["*"]]


def read_calls(directory: Path, region: str, account: str) -> list[Call]:
    calls: set[Call] = set()
    for path in sorted(directory.glob("*.jsonl")):
        for raw in path.read_text(encoding="utf-8").splitlines():
            if raw.strip():
                calls.update(requests_of(path.stem, json.loads(raw), region, account))
    return sorted(calls, key=lambda c: (c.function, c.action, c.resource))


class _Loader:
    """The SAM translator asks IAM for managed policy ARNs by name; this template names none."""

    def load(self) -> dict[str, str]:
        return {}


def role_statements(template_path: Path, resolver: Any) -> dict[str, list[dict[str, Any]]]:
    """Each function's role statements, as the SAM translator writes them, intrinsics resolved."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = parse_template(template_path.read_text(encoding="utf-8"))
    for resource in (template.get("Resources") or {}).values():  # as `sam package` leaves them
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = "s3://packaged/code.zip"
    params = {name: resolver.parameter_value(name) for name in (template.get("Parameters") or {})}
    params.update(
        {"AWS::Region": resolver.region, "AWS::AccountId": resolver.account_id, "AWS::Partition": "aws"}
    )
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=resolver.region))
    translated = translator.translate(
        template, parameter_values=params, get_managed_policy_map=_Loader().load
    )
    resources = translated["Resources"]
    out: dict[str, list[dict[str, Any]]] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        role_ref = resource["Properties"].get("Role", {})
        role_id = role_ref.get("Fn::GetAtt", [""])[0] if isinstance(role_ref, dict) else ""
        role = resources.get(role_id, {}).get("Properties", {})
        statements: list[dict[str, Any]] = []
        for policy in role.get("Policies") or []:
            document = resolver.resolve(policy.get("PolicyDocument") or {})
            found = document.get("Statement") or []
            statements.extend(found if isinstance(found, list) else [found])
        out[resolver.physical_name(logical_id)] = statements
    return out


def _list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)] if value is not None else []


def _matches(patterns: list[str], value: str, *, fold: bool) -> bool:
    if fold:
        return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns)
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _applies(statement: dict[str, Any], action: str, resource: str) -> bool:
    if "NotAction" in statement:
        action_ok = not _matches(_list(statement["NotAction"]), action, fold=True)
    else:
        action_ok = _matches(_list(statement.get("Action")), action, fold=True)
    if "NotResource" in statement:
        return action_ok and not _matches(_list(statement["NotResource"]), resource, fold=False)
    return action_ok and _matches(_list(statement.get("Resource")), resource, fold=False)


def allowed(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    if any(s.get("Effect") == "Deny" and _applies(s, action, resource) for s in statements):
        return False
    return any(s.get("Effect") == "Allow" and _applies(s, action, resource) for s in statements)


def denied_calls(
    calls: list[Call],
    roles: dict[str, list[dict[str, Any]]],
    key_policies: dict[str, list[dict[str, Any]]] | None = None,
    account: str = "",
) -> list[Call]:
    """Calls the role does not allow; a KMS call on a key of ``key_policies`` also needs the key's
    policy to let the account's IAM decide (b24stack.kms_implied.key_policy_delegates)."""
    from .kms_implied import key_policy_delegates

    policies = key_policies or {}
    return [
        c
        for c in calls
        if not allowed(roles.get(c.function, []), c.action, c.resource)
        or (c.resource in policies and not key_policy_delegates(policies[c.resource], c.action, account))
    ]


def wildcard_grants(roles: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    """(function, action) granted on "*" where the action supports resource-level permissions."""
    found = []
    for function, statements in roles.items():
        for s in statements:
            if s.get("Effect") != "Allow" or "*" not in _list(s.get("Resource")):
                continue
            for action in _list(s.get("Action")):
                if action not in NO_RESOURCE_LEVEL:
                    found.append((function, action))
    return sorted(set(found))
