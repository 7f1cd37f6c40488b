"""Calls on resources encrypted with a customer managed key imply KMS calls as the caller
(b24stack.kms_implied), and the coverage evaluator refuses them without the key grant."""

from __future__ import annotations

from typing import Any

from b24stack.iam import Call, denied_calls
from b24stack.kms_implied import (
    encrypted_resources,
    implied_kms_calls,
    key_policies,
    key_policy_delegates,
    kms_actions_for,
)

ACCOUNT = "123456789012"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/AppTable"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:Q"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/table-key"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"

TEMPLATE: dict[str, Any] = {
    "Resources": {
        "TableKey": {
            "Type": "AWS::KMS::Key",
            "Properties": {
                "KeyPolicy": {
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}
                    ]
                }
            },
        },
        "AppTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "SSESpecification": {
                    "SSEEnabled": True,
                    "SSEType": "KMS",
                    "KMSMasterKeyId": {"Ref": "TableKey"},
                }
            },
        },
        "Q": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"KmsMasterKeyId": {"Fn::GetAtt": ["TableKey", "Arn"]}},
        },
        "Managed": {"Type": "AWS::SQS::Queue", "Properties": {"KmsMasterKeyId": "alias/aws/sqs"}},
        "Plain": {"Type": "AWS::SQS::Queue", "Properties": {"SqsManagedSseEnabled": True}},
    }
}


def _resolve(value: Any) -> Any:
    """Just enough of the local resolver: the ARNs these resources get."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        name = value["Fn::GetAtt"][0]
        return {"TableKey": KEY, "AppTable": TABLE}.get(name, f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}")
    return value


GRANTS = [
    {
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem", "dynamodb:Query"],
        "Resource": [TABLE, f"{TABLE}/index/*"],
    },
    {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": QUEUE},
]
KEY_GRANT = {
    "Effect": "Allow",
    "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"],
    "Resource": KEY,
    "Condition": {"StringEquals": {"kms:ViaService": "dynamodb.us-east-1.amazonaws.com"}},
}


def test_only_resources_under_the_templates_own_keys_count():
    found = encrypted_resources(TEMPLATE, _resolve)
    assert found == {TABLE: KEY, f"{TABLE}/index/*": KEY, QUEUE: KEY}


def test_data_calls_imply_the_documented_kms_actions():
    assert kms_actions_for("dynamodb:GetItem") == ("kms:Decrypt", "kms:DescribeKey")
    assert kms_actions_for("dynamodb:DescribeTable") == ()  # control plane: no data key
    assert set(kms_actions_for("sqs:SendMessage")) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert kms_actions_for("sqs:ReceiveMessage") == ("kms:Decrypt",)
    assert set(kms_actions_for("sns:Publish")) == {"kms:GenerateDataKey", "kms:Decrypt"}


def test_a_role_that_reads_the_table_without_the_key_grant_is_denied():
    calls = [Call("F", "dynamodb:Query", f"{TABLE}/index/gsi1"), Call("F", "sqs:SendMessage", QUEUE)]
    implied = implied_kms_calls(calls, encrypted_resources(TEMPLATE, _resolve))
    assert set(implied) == {
        Call("F", "kms:Decrypt", KEY),
        Call("F", "kms:DescribeKey", KEY),
        Call("F", "kms:GenerateDataKey", KEY),
    }
    policies = key_policies(TEMPLATE, _resolve)
    # The table grant alone is not enough: AWS would refuse every call on the encrypted table.
    assert denied_calls(implied, {"F": GRANTS}, policies, ACCOUNT) == implied
    assert denied_calls(implied, {"F": [*GRANTS, KEY_GRANT]}, policies, ACCOUNT) == []


def test_a_key_policy_that_does_not_delegate_to_the_account_defeats_any_iam_grant():
    closed = [{"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": ["kms:Describe*"], "Resource": "*"}]
    assert not key_policy_delegates(closed, "kms:Decrypt", ACCOUNT)
    assert key_policy_delegates(closed, "kms:DescribeKey", ACCOUNT)
    implied = [Call("F", "kms:Decrypt", KEY)]
    assert denied_calls(implied, {"F": [KEY_GRANT]}, {KEY: closed}, ACCOUNT) == implied
