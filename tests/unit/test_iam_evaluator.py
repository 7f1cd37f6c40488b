"""The small IAM evaluator behind the coverage test (b24stack.iam)."""

from __future__ import annotations

from b24stack.iam import Call, allowed, denied_calls, requests_of, wildcard_grants

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/AppTable"


def test_an_allow_with_matching_action_and_resource_allows():
    st = [{"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": TABLE}]
    assert allowed(st, "dynamodb:GetItem", TABLE)
    assert not allowed(st, "dynamodb:PutItem", TABLE)  # missing grant
    assert not allowed(st, "dynamodb:GetItem", TABLE + "/index/gsi1")


def test_wildcards_and_deny():
    st = [
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": [TABLE, f"{TABLE}/index/*"]},
        {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"},
    ]
    assert allowed(st, "dynamodb:Query", f"{TABLE}/index/gsi1")
    assert not allowed(st, "dynamodb:DeleteItem", TABLE)


def test_the_ssm_grant_the_policy_template_made_does_not_cover_the_parameter():
    # SSMParameterReadPolicy given "b24app" (the old template): parameter/b24app, not the secret.
    old = [
        {
            "Effect": "Allow",
            "Action": ["ssm:GetParameter"],
            "Resource": "arn:aws:ssm:us-east-1:1:parameter/b24app",
        }
    ]
    call = requests_of(
        "F",
        {"service": "ssm", "operation": "GetParameter", "Name": "/b24app/client_secret"},
        "us-east-1",
        "1",
    )
    assert denied_calls(call, {"F": old}) == call


def test_operations_map_to_their_iam_actions_and_arns():
    [send] = requests_of(
        "F",
        {
            "service": "sqs",
            "operation": "SendMessageBatch",
            "QueueUrl": "http://127.0.0.1:1/123456789012/EventsQueue",
        },
        "us-east-1",
        "123456789012",
    )
    assert send == Call("F", "sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:EventsQueue")
    batch = requests_of(
        "F",
        {"service": "dynamodb", "operation": "BatchWriteItem", "Tables": ["AppTable"]},
        "us-east-1",
        "123456789012",
    )
    assert batch == [Call("F", "dynamodb:BatchWriteItem", TABLE)]


def test_a_star_resource_is_flagged_unless_the_action_has_no_resource_level():
    roles = {
        "F": [
            {"Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": "*"},
            {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "*"},
        ]
    }
    assert wildcard_grants(roles) == [("F", "dynamodb:GetItem")]


def test_a_transaction_needs_each_contained_action_not_a_transact_action():
    from b24stack.aws_calls import _names

    params = {
        "TransactItems": [
            {"Update": {"TableName": "AppTable", "Key": {}}},
            {"ConditionCheck": {"TableName": "AppTable", "Key": {}}},
        ]
    }
    line = {"service": "dynamodb", "operation": "TransactWriteItems", **_names(params)}
    calls = requests_of("F", line, "us-east-1", "123456789012")
    assert sorted(c.action for c in calls) == ["dynamodb:ConditionCheckItem", "dynamodb:UpdateItem"]
    # A role granting UpdateItem alone misses the condition check (AWS would refuse the transaction).
    role = [{"Effect": "Allow", "Action": ["dynamodb:UpdateItem"], "Resource": TABLE}]
    assert denied_calls(calls, {"F": role}) == [Call("F", "dynamodb:ConditionCheckItem", TABLE)]
