"""Runs after the other e2e tests: every AWS call each function made during the run is allowed by
that function's role, as the SAM translator builds it from template.yaml (the local stack enforces no
IAM, so without this a missing grant first shows in a real account). Also: no grant on "*" for an
action that supports resource-level permissions. A call on a table, queue or topic encrypted with a
customer managed key also needs the KMS actions AWS performs as the caller (b24stack.kms_implied),
granted by the role and delegated to IAM by the key's policy."""

from __future__ import annotations

from pathlib import Path

from b24stack.iam import denied_calls, read_calls, role_statements, wildcard_grants
from b24stack.kms_implied import encrypted_resources, implied_kms_calls, key_policies
from b24stack.template import parse_template
from tests.e2e.conftest import ROOT


def _calls(stack):
    directory = Path(stack.state_dir) / "aws-calls"
    assert directory.is_dir(), "the stack recorded no AWS calls: is B24STACK_AWS_CALLS_DIR set?"
    return read_calls(directory, stack.region, stack.resolver.account_id)


def test_every_recorded_aws_call_is_allowed_by_the_functions_role(stack):
    calls = _calls(stack)
    functions = {c.function for c in calls}
    assert len(calls) > 10 and {"InstallFunction", "EventsFunction", "EventWorkerFunction"} <= functions
    roles = role_statements(ROOT / "template.yaml", stack.resolver)
    assert functions <= set(roles), f"calls from functions without a role: {functions - set(roles)}"
    denied = denied_calls(calls, roles)
    assert denied == [], "not allowed in AWS:\n" + "\n".join(
        f"  {c.function}: {c.action} on {c.resource}" for c in denied
    )
    # The secret is read where the code says it is: the check saw it and found it granted.
    assert any(c.action == "ssm:GetParameter" for c in calls)


def test_no_role_grants_a_resource_level_action_on_every_resource(stack):
    roles = role_statements(ROOT / "template.yaml", stack.resolver)
    assert wildcard_grants(roles) == []


def test_every_call_on_an_encrypted_resource_may_use_its_key(stack):
    """DynamoDB decrypts the table key as the caller: a role without kms:Decrypt on TableKey fails
    every table call in AWS, though the local stack (which encrypts nothing) never notices."""
    calls = _calls(stack)
    template = parse_template((ROOT / "template.yaml").read_text(encoding="utf-8"))
    encrypted = encrypted_resources(template, stack.resolver.resolve)
    assert any(":table/" in arn for arn in encrypted), "the table is encrypted with the stack's own key"
    implied = implied_kms_calls(calls, encrypted)
    assert {"InstallFunction", "EventsFunction", "EventWorkerFunction"} <= {c.function for c in implied}
    roles = role_statements(ROOT / "template.yaml", stack.resolver)
    policies = key_policies(template, stack.resolver.resolve)
    denied = denied_calls(implied, roles, policies, stack.resolver.account_id)
    assert denied == [], "not allowed in AWS (the key of an encrypted resource):\n" + "\n".join(
        f"  {c.function}: {c.action} on {c.resource}" for c in denied
    )
