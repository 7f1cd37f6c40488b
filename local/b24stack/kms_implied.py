"""The KMS calls AWS makes as the caller when a resource is encrypted with a customer managed key.

A function granted ``dynamodb:GetItem`` on a table encrypted with a customer managed key still fails
in AWS unless its role may also use that key: the local stack encrypts nothing, so the coverage
test adds these implied calls to the ones it recorded. What each service needs from its callers
(AWS docs):

- DynamoDB (encryption at rest, customer managed key): DynamoDB decrypts the table key with the
  caller's credentials (cached per caller for minutes, then asked again, so revoking takes effect):
  every data-plane call needs ``kms:Decrypt``; ``kms:DescribeKey`` lets DynamoDB check the key.
- SQS (SSE-KMS): producers need ``kms:GenerateDataKey`` and ``kms:Decrypt``; consumers ``kms:Decrypt``.
- SNS (SSE): publishers need ``kms:GenerateDataKey*`` and ``kms:Decrypt``.

AWS managed keys (``alias/aws/...``) and SQS/SNS managed encryption need nothing from the caller.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from typing import Any

from .iam import Call, _list

#: IAM actions that read or write table data (control-plane calls such as DescribeTable touch no data).
DYNAMODB_DATA_ACTIONS = frozenset(
    f"dynamodb:{op}"
    for op in (
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "ConditionCheckItem",
        "PartiQLSelect",
        "PartiQLInsert",
        "PartiQLUpdate",
        "PartiQLDelete",
    )
)
_QUEUE_ACTIONS = {
    "sqs:SendMessage": ("kms:GenerateDataKey", "kms:Decrypt"),
    "sqs:ReceiveMessage": ("kms:Decrypt",),
}
_TOPIC_ACTIONS = {"sns:Publish": ("kms:GenerateDataKey", "kms:Decrypt")}

_KEY_TYPE = "AWS::KMS::Key"


def kms_actions_for(action: str) -> tuple[str, ...]:
    """The KMS actions a call with IAM ``action`` implies on its resource's customer managed key."""
    if action in DYNAMODB_DATA_ACTIONS:
        return ("kms:Decrypt", "kms:DescribeKey")
    return _QUEUE_ACTIONS.get(action) or _TOPIC_ACTIONS.get(action) or ()


def encrypted_resources(template: dict[str, Any], resolve: Callable[[Any], Any]) -> dict[str, str]:
    """ARN pattern of each table, queue and topic encrypted with a key of this template -> the key's ARN.

    ``resolve`` evaluates intrinsics (the local stack's resolver). Only keys the template creates
    count: an ``alias/aws/...`` key is AWS managed, and its policy already admits the account's callers
    through the service.
    """
    resources = template.get("Resources") or {}

    def key_arn(ref: Any) -> str | None:
        if isinstance(ref, dict) and len(ref) == 1:
            name = ref.get("Ref") or (ref.get("Fn::GetAtt") or [None])[0]
            if isinstance(name, str) and (resources.get(name) or {}).get("Type") == _KEY_TYPE:
                return str(resolve({"Fn::GetAtt": [name, "Arn"]}))
        if isinstance(ref, str) and ref.startswith("arn:") and ":key/" in ref:
            return ref
        return None

    found: dict[str, str] = {}
    for logical_id, resource in resources.items():
        props = resource.get("Properties") or {}
        rtype = resource.get("Type")
        if rtype == "AWS::DynamoDB::Table":
            sse = props.get("SSESpecification") or {}
            key = key_arn(sse.get("KMSMasterKeyId")) if sse.get("SSEEnabled") else None
            if key:
                table = str(resolve({"Fn::GetAtt": [logical_id, "Arn"]}))
                found[table] = key
                found[f"{table}/index/*"] = key
        elif rtype == "AWS::SQS::Queue":
            key = key_arn(props.get("KmsMasterKeyId"))
            if key:
                found[str(resolve({"Fn::GetAtt": [logical_id, "Arn"]}))] = key
        elif rtype == "AWS::SNS::Topic":
            key = key_arn(props.get("KmsMasterKeyId"))
            if key:
                arn = str(resolve({"Ref": logical_id}))
                found[arn if arn.startswith("arn:") else f"arn:aws:sns:*:*:{logical_id}"] = key
    return found


def implied_kms_calls(calls: Iterable[Call], encrypted: dict[str, str]) -> list[Call]:
    """The KMS calls AWS makes as each caller for its calls on encrypted resources."""
    implied: set[Call] = set()
    for call in calls:
        actions = kms_actions_for(call.action)
        if not actions:
            continue
        for pattern, key in encrypted.items():
            if fnmatch.fnmatchcase(call.resource, pattern):
                implied.update(Call(call.function, action, key) for action in actions)
    return sorted(implied, key=lambda c: (c.function, c.action, c.resource))


def key_policies(template: dict[str, Any], resolve: Callable[[Any], Any]) -> dict[str, list[dict[str, Any]]]:
    """Each key's ARN -> its key policy statements (intrinsics resolved)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != _KEY_TYPE:
            continue
        policy = resolve((resource.get("Properties") or {}).get("KeyPolicy") or {})
        statements = policy.get("Statement") or [] if isinstance(policy, dict) else []
        out[str(resolve({"Fn::GetAtt": [logical_id, "Arn"]}))] = (
            statements if isinstance(statements, list) else [statements]
        )
    return out


def key_policy_delegates(statements: list[dict[str, Any]], action: str, account: str) -> bool:
    """Does the key policy let the account's IAM policies grant ``action``? (an Allow naming the
    account's root for it; conditions not evaluated, as in b24stack.iam). Without that, no IAM
    policy can grant use of the key."""
    root = f"arn:aws:iam::{account}:root"
    for s in statements:
        if s.get("Effect") != "Allow":
            continue
        principal = s.get("Principal") or {}
        names = _list(principal.get("AWS")) if isinstance(principal, dict) else _list(principal)
        if not any(n in (root, account) for n in names):
            continue
        if any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _list(s.get("Action"))):
            return True
    return False
