"""`b24app doctor`'s checks decide ok/fail from what they saw and say what to fix (fakes for AWS and
the authorization server; the whole command runs against the local stack in tests/e2e/test_doctor.py)."""

from __future__ import annotations

from typing import Any

import httpx
from botocore.exceptions import ClientError

from b24cli.doctor_cmd import FAIL, OK, check_auth_server, check_schedules, check_secret
from b24cli.doctor_env import StackInfo
from b24cli.target import Target

SECRET = "s3cr3t-value-never-printed"


class FakeSsm:
    def __init__(self, param: dict[str, Any] | None) -> None:
        self.param = param

    def get_parameter(self, Name: str, WithDecryption: bool) -> dict[str, Any]:
        assert WithDecryption
        if self.param is None:
            raise ClientError({"Error": {"Code": "ParameterNotFound", "Message": ""}}, "GetParameter")
        return {"Parameter": {"Name": Name, **self.param}}


def _info(ssm: Any = None, **parameters: str) -> StackInfo:
    info = StackInfo(
        Target("T", "us-east-1", None, "test"), {"B24ClientSecretParameter": "/b24app/cs", **parameters}
    )
    info._clients["ssm"] = ssm
    return info


def test_a_readable_secure_string_is_ok_and_its_value_never_shows():
    check = check_secret(_info(FakeSsm({"Type": "SecureString", "Value": SECRET})))
    assert check.status == OK and SECRET not in repr(check)


def test_a_missing_plain_or_empty_secret_fails_with_the_command_that_fixes_it():
    missing = check_secret(_info(FakeSsm(None)))
    assert missing.status == FAIL and "ParameterNotFound" in missing.detail
    assert missing.fix.startswith("aws ssm put-parameter --name /b24app/cs --type SecureString")
    plain = check_secret(_info(FakeSsm({"Type": "String", "Value": SECRET})))
    assert plain.status == FAIL and "unencrypted" in plain.detail and SECRET not in repr(plain)
    empty = check_secret(_info(FakeSsm({"Type": "SecureString", "Value": " "})))
    assert empty.status == FAIL and "--overwrite" in empty.fix


def _server(handler: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_the_auth_server_is_reachable_when_it_answers_a_documented_oauth_error():
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={"error": "invalid_client", "error_description": "x"})

    info = _info(B24OAuthUrl="https://oauth.example", B24ClientId="app.1")
    check = check_auth_server(info, http=_server(answer))
    assert check.status == OK and "invalid_client" in check.detail
    [request] = seen
    assert request.url.path == "/oauth/token/" and request.url.params["client_id"] == "app.1"
    assert "client_secret" not in request.url.params  # the probe never carries the secret


def test_an_auth_server_that_does_not_answer_or_answers_no_oauth_error_fails():
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    info = _info(B24OAuthUrl="https://oauth.example")
    check = check_auth_server(info, http=_server(down))
    assert check.status == FAIL and "did not answer" in check.detail and "B24OAuthUrl" in check.fix
    page = check_auth_server(info, http=_server(lambda r: httpx.Response(200, text="<html>")))
    assert page.status == FAIL
    token = check_auth_server(info, http=_server(lambda r: httpx.Response(200, json={"access_token": "a"})))
    assert token.status == FAIL


class FakeCfn:
    def get_paginator(self, name: str) -> Any:
        assert name == "list_stack_resources"
        return self

    def paginate(self, StackName: str) -> list[dict[str, Any]]:
        assert StackName == "prod"
        return [
            {
                "StackResourceSummaries": [
                    {"ResourceType": "AWS::Scheduler::Schedule", "PhysicalResourceId": "prod-Sweep-1"},
                    {"ResourceType": "AWS::Lambda::Function", "PhysicalResourceId": "prod-F"},
                    {"ResourceType": "AWS::Scheduler::Schedule", "PhysicalResourceId": "prod-Probe-2"},
                ]
            }
        ]


class FakeScheduler:
    def __init__(self, states: dict[str, str]) -> None:
        self.states = states

    def get_schedule(self, Name: str) -> dict[str, Any]:
        return {"Name": Name, "State": self.states[Name]}


def _aws_info(states: dict[str, str]) -> StackInfo:
    info = StackInfo(Target("T", "us-east-1", None, "stack prod"), {}, stack_name="prod")
    info._clients.update({"cloudformation": FakeCfn(), "scheduler": FakeScheduler(states)})
    return info


def test_a_deployed_stacks_schedules_are_read_from_eventbridge_scheduler_and_a_disabled_one_fails():
    ok = check_schedules(_aws_info({"prod-Sweep-1": "ENABLED", "prod-Probe-2": "ENABLED"}))
    assert ok.status == OK and "2 enabled" in ok.detail
    off = check_schedules(_aws_info({"prod-Sweep-1": "ENABLED", "prod-Probe-2": "DISABLED"}))
    assert off.status == FAIL and "prod-Probe-2" in off.detail and "ENABLED" in off.fix
