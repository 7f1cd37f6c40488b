"""The local stack runner against a small fixture project (tests/integration/fixtures_stack).

Real processes, real ports: DynamoDB Local, a moto server, function subprocesses, HTTP round
trips through the gateway and boto3 calls through the local Lambda API. Waits poll with
deadlines; nothing sleeps to "give it time".
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from b24stack import FunctionError, LocalServices, LocalStack
from b24stack.intrinsics import Resolver
from b24stack.lambda_env import FunctionPool, FunctionSpec, LogSink
from b24stack.schedules import Schedule, ScheduleRunner, aws_cron_to_croniter, parse_expression
from b24stack.sqs_poller import batch_failures
from b24stack.template import load_template, parse_template

FIXTURE = Path(__file__).parent / "fixtures_stack"
SECRET = "s3cr3t-never-in-logs"

pytestmark = pytest.mark.timeout(120)


# -- helpers ----------------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry))
    return children


def descendants(*roots: int) -> set[int]:
    children = _children_map()
    found: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    state = tmp_path_factory.mktemp("stack-state")
    with LocalStack(
        FIXTURE,
        port=0,
        state_dir=state,
        in_memory=True,
        schedules=False,
        env_overrides={"EXTRA": "from-override", "HOME_SECRET": SECRET},
    ) as running_stack:
        yield running_stack


@pytest.fixture(scope="module")
def http(stack: LocalStack) -> Any:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        yield client


# -- template and intrinsics (no processes) --------------------------------------------------


def test_short_tags_become_long_form() -> None:
    data = parse_template(
        """
AWSTemplateFormatVersion: 2010-09-09
Resources:
  R:
    Properties:
      A: !Ref Thing
      B: !GetAtt Queue.Arn
      C: !Sub "${AWS::Region}-x"
      D: !Join [",", [!Ref A, !Select [0, !Split [",", "a,b"]]]]
      E: !If [Cond, !Base64 "x", !GetAZs ""]
      F: !FindInMap [M, k, v]
      G: !ImportValue other
      H: !Equals [!Not [!Condition C1], !And [!Or [a, b], c]]
      I: !Cidr ["10.0.0.0/16", 4, 8]
      J: !GetAtt [Table, StreamArn]
"""
    )
    props = data["Resources"]["R"]["Properties"]
    assert data["AWSTemplateFormatVersion"] == "2010-09-09"
    assert props["A"] == {"Ref": "Thing"}
    assert props["B"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert props["C"] == {"Fn::Sub": "${AWS::Region}-x"}
    assert props["D"] == {"Fn::Join": [",", [{"Ref": "A"}, {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]}]]}
    assert props["E"] == {"Fn::If": ["Cond", {"Fn::Base64": "x"}, {"Fn::GetAZs": ""}]}
    assert props["F"] == {"Fn::FindInMap": ["M", "k", "v"]}
    assert props["G"] == {"Fn::ImportValue": "other"}
    assert props["H"] == {
        "Fn::Equals": [{"Fn::Not": [{"Condition": "C1"}]}, {"Fn::And": [{"Fn::Or": ["a", "b"]}, "c"]}]
    }
    assert props["I"] == {"Fn::Cidr": ["10.0.0.0/16", 4, 8]}
    assert props["J"] == {"Fn::GetAtt": ["Table", "StreamArn"]}


def test_resolver_takes_parameters_from_bound_env_vars() -> None:
    template = load_template(FIXTURE / "template.yaml")
    dev = Resolver(template, region="eu-west-1", environ={})
    assert dev.parameter_value("Stage") == "dev"
    assert dev.condition("IsProd") is False and dev.condition("NotProd") is True
    assert not dev.resource_enabled("ProdOnlyFunction")

    # STAGE is assigned !Ref Stage in Globals, so the STAGE env var sets the parameter locally.
    prod = Resolver(template, region="eu-west-1", environ={"STAGE": "prod", "GREETING": "hey"})
    assert prod.parameter_value("Stage") == "prod"
    assert prod.parameter_value("Greeting") == "hey"
    assert prod.parameter_value("Origins") == ["https://a.example", "https://b.example"]
    assert prod.condition("IsProd") is True
    assert prod.resource_enabled("ProdOnlyFunction")
    props = template.function_properties("EchoFunction")
    assert prod.resolve(props["MemorySize"]) == 512
    assert props["Timeout"] == 5 and props["Handler"] == "app.lambda_handler"
    env = prod.resolve(props["Environment"]["Variables"])
    assert env["STAGE_LABEL"] == "production"
    assert env["MAYBE"] == "prod-only"
    assert env["WHERE"] == "eu-west-1/123456789012/aws"
    assert env["JOINED"] == "fixture|https://b.example"
    assert env["TABLE_NAME"] == "local-fixture-items"
    assert env["TABLE_ARN"] == "arn:aws:dynamodb:eu-west-1:123456789012:table/local-fixture-items"
    assert env["QUEUE_ARN"] == "arn:aws:sqs:eu-west-1:123456789012:JobsQueue"
    assert env["DLQ_NAME"] == "fixture-jobs-dlq"
    assert env["UNKNOWN"].startswith("UNRESOLVED(")
    assert env["QUEUE_URL"].startswith("UNRESOLVED(")  # no queue yet: a placeholder, not a crash
    prod.sqs_endpoint = "http://127.0.0.1:1"
    assert prod.resolve({"Ref": "JobsQueue"}) == "http://127.0.0.1:1/123456789012/JobsQueue"
    assert "MAYBE" not in dev.resolve(props["Environment"]["Variables"])
    assert dev.resolve({"Ref": "CallerFunction"}) == "fixture-caller"
    assert dev.resolve({"Fn::Sub": ["${X}-${!Literal}", {"X": {"Ref": "AppName"}}]}) == "fixture-${Literal}"
    assert dev.resolve({"Fn::GetAtt": ["Nope", "Arn"]}).startswith("UNRESOLVED(")
    assert dev.resolve({"Fn::Select": [9, []]}).startswith("UNRESOLVED(")
    assert dev.resolve({"Fn::Cidr": ["10.0.0.0/16", 4, 8]}).startswith("UNRESOLVED(")
    assert template.function_properties("EchoFunction")["Layers"] == [{"Ref": "SharedLayer"}]


def test_aws_cron_and_rate_expressions() -> None:
    assert aws_cron_to_croniter("0 3 * * ? *") == ("0 3 * * *", "*")
    assert aws_cron_to_croniter("0 9 ? * 2-6 *") == ("0 9 * * 1-5", "*")
    assert aws_cron_to_croniter("15 10 ? * 6#3 2030") == ("15 10 * * 5#3", "2030")
    assert aws_cron_to_croniter("0 8 ? * MON,1 *") == ("0 8 * * MON,0", "*")
    assert parse_expression("rate(5 minutes)") == ("rate", 300)
    assert parse_expression("rate(1 hour)") == ("rate", 3600)
    assert parse_expression("rate(2 days)") == ("rate", 172800)
    with pytest.raises(ValueError):
        parse_expression("every now and then")
    now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    nightly = Schedule("F", "E", "cron(0 3 * * ? *)")
    assert nightly.next_after(now) == datetime(2030, 1, 2, 3, 0, tzinfo=UTC)
    weekdays = Schedule("F", "E", "cron(0 9 ? * 2-6 *)")  # 2030-01-05 is a Saturday
    assert weekdays.next_after(datetime(2030, 1, 4, 10, 0, tzinfo=UTC)) == datetime(
        2030, 1, 7, 9, 0, tzinfo=UTC
    )
    later = Schedule("F", "E", "cron(0 0 1 1 ? 2032)")
    assert later.next_after(now) == datetime(2032, 1, 1, 0, 0, tzinfo=UTC)
    local = Schedule("F", "E", "cron(0 3 * * ? *)", timezone="Europe/Berlin")
    assert local.next_after(now) == datetime(2030, 1, 2, 2, 0, tzinfo=UTC)
    assert Schedule("F", "E", "rate(5 minutes)").next_after(now) == datetime(2030, 1, 1, 12, 5, tzinfo=UTC)
    assert Schedule("F", "E", "at(2020-01-01T00:00:00)").next_after(now) is None


def test_batch_item_failure_rules() -> None:
    ids = {"a", "b"}
    assert batch_failures(None, ids) == set()
    assert batch_failures({}, ids) == set()
    assert batch_failures({"batchItemFailures": []}, ids) == set()
    assert batch_failures({"batchItemFailures": [{"itemIdentifier": "a"}]}, ids) == {"a"}
    assert batch_failures({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, ids) is None
    assert batch_failures({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) is None
    assert batch_failures({"batchItemFailures": [{"id": "a"}]}, ids) is None
    assert batch_failures("oops", ids) is None


def test_schedule_runner_fires_when_due() -> None:
    class Soon(Schedule):
        def next_after(self, now: datetime) -> datetime | None:
            return None if self.expression == "done" else now

    fired: queue.Queue[tuple[str, Any]] = queue.Queue()

    class FakeFunctions:
        def invoke_async(self, logical_id: str, event: Any) -> str:
            fired.put((logical_id, event))
            return "id"

    stop = threading.Event()
    schedules = [Soon("Tick", "Now", "soon", input='{"job": 1}'), Soon("Off", "E", "soon", enabled=False)]
    runner = ScheduleRunner(
        schedules,
        functions=FakeFunctions(),  # type: ignore[arg-type]
        region="us-east-1",
        account_id="1",
        stop_event=stop,
    )
    runner.start()
    try:
        assert fired.get(timeout=5) == ("Tick", {"job": 1})
    finally:
        stop.set()
        runner.join(timeout=5)
    assert not runner.is_alive()
    assert all(fn == "Tick" for fn, _ in list(fired.queue))


def test_pool_picks_up_code_changes(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    app = code / "app.py"
    app.write_text("def handler(event, context):\n    return {'v': 1}\n")
    spec = FunctionSpec(
        logical_id="Tmp",
        name="Tmp",
        arn="arn:aws:lambda:us-east-1:123456789012:function:Tmp",
        code_dir=code,
        handler="app.handler",
        layer_dirs=[],
        environment={"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=5,
    )
    sink = LogSink("Tmp", tmp_path / "logs" / "Tmp.log")
    pool = FunctionPool(spec, sink, size=1)
    try:
        assert pool.invoke({}).payload == {"v": 1}
        app.write_text("def handler(event, context):\n    return {'v': 2}\n")
        later = time.time() + 5
        os.utime(app, (later, later))
        wait_until(lambda: pool.invoke({}).payload == {"v": 2}, 15, "the edited handler to be used")
    finally:
        pool.close()
        sink.close()
    assert pool.pids() == []


# -- HTTP API gateway -------------------------------------------------------------------------


def test_http_round_trip_builds_v2_event(stack: LocalStack, http: httpx.Client) -> None:
    response = http.post(
        "/echo/bob%20smith?a=1&a=2&flag",
        json={"x": 1},
        headers={"Cookie": "c=1; d=2", "X-Custom": "v1", "User-Agent": "tester/1"},
    )
    assert response.status_code == 201
    assert response.headers["x-echo"] == "yes"
    assert response.headers["x-num"] == "7"
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2"]
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    event = data["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /echo/{name}"
    assert event["rawPath"] == "/echo/bob%20smith"
    assert event["rawQueryString"] == "a=1&a=2&flag"
    assert event["cookies"] == ["c=1", "d=2"]
    assert event["queryStringParameters"] == {"a": "1,2", "flag": ""}
    assert event["pathParameters"] == {"name": "bob smith"}
    headers = event["headers"]
    assert all(k == k.lower() for k in headers)
    assert "cookie" not in headers and "connection" not in headers
    assert headers["x-custom"] == "v1"
    assert headers["content-type"] == "application/json"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    ctx = event["requestContext"]
    assert ctx["http"] == {
        "method": "POST",
        "path": "/echo/bob smith",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "tester/1",
    }
    assert ctx["routeKey"] == "POST /echo/{name}" and ctx["stage"] == "$default"
    assert ctx["accountId"] == "123456789012" and len(ctx["apiId"]) == 10
    assert ctx["requestId"] == response.headers["apigw-requestid"]
    wall_clock_now = time.time()
    assert abs(ctx["timeEpoch"] / 1000 - wall_clock_now) < 60  # a real timestamp, not a latency check
    assert re.fullmatch(r"\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000", ctx["time"])
    assert ctx["domainName"] == stack.gateway_url.removeprefix("http://")
    assert json.loads(event["body"]) == {"x": 1} and event["isBase64Encoded"] is False

    env = data["env"]
    queue_url = stack.resources["JobsQueue"]
    assert env["TABLE_NAME"] == stack.resources["ItemsTable"] == "local-fixture-items"
    assert env["QUEUE_URL"] == queue_url and queue_url.startswith(stack.sqs_endpoint)
    assert env["STAGE_LABEL"] == "development" and env["MAYBE"] is None
    assert env["GREETING"] == "hello" and env["EXTRA"] == "from-override"
    assert env["B24_LOCAL"] == "1" and env["AWS_REGION"] == stack.region
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "EchoFunction"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256" and env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "5"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == stack.dynamodb_endpoint
    assert env["AWS_ENDPOINT_URL_SQS"] == env["AWS_ENDPOINT_URL"] == stack.sqs_endpoint
    assert env["AWS_ENDPOINT_URL_LAMBDA"] == stack.invoke_url
    assert data["layer"] == "from-layer" and data["precedence"] == "function"
    assert data["cwd"] == str(FIXTURE / "functions" / "echo")
    context = data["context"]
    assert context["function_name"] == "EchoFunction" and context["memory_limit_in_mb"] == "256"
    assert 0 < context["remaining"] <= 5000
    assert context["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:EchoFunction".replace(
        "us-east-1", stack.region
    )
    assert context["log_group"] == "/aws/lambda/EchoFunction"


@pytest.mark.parametrize(
    ("content_type", "raw", "as_text"),
    [
        ("application/json; charset=utf-8", b'{"a": 1}', True),
        ("text/plain", "héllo".encode(), True),
        ("application/xml", b"<a/>", True),
        ("application/javascript", b"var a;", True),
        ("application/x-www-form-urlencoded", b"auth%5Bdomain%5D=x.bitrix24.ru&event=ONAPPINSTALL", False),
        ("application/octet-stream", bytes(range(256)), False),
        (None, b"no content type", False),
    ],
)
def test_gateway_body_encoding(
    http: httpx.Client, content_type: str | None, raw: bytes, as_text: bool
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    event = http.post("/echo/enc", content=raw, headers=headers).json()["event"]
    assert event["isBase64Encoded"] is not as_text
    body = event["body"].encode() if as_text else base64.b64decode(event["body"])
    assert body == raw


def test_gateway_routing_and_responses(http: httpx.Client) -> None:
    assert http.get("/files/special").json()["event"]["routeKey"] == "GET /files/special"
    proxied = http.get("/files/a/b/c.txt").json()["event"]
    assert proxied["routeKey"] == "GET /files/{proxy+}"
    assert proxied["pathParameters"] == {"proxy": "a/b/c.txt"}
    assert "body" not in proxied and "queryStringParameters" not in proxied
    assert http.put("/any", content=b"x").json()["event"]["routeKey"] == "ANY /any"
    assert http.delete("/any").status_code == 201

    missing = http.get("/nope")
    assert missing.status_code == 404 and missing.json() == {"message": "Not Found"}
    assert http.post("/files/a").status_code == 404  # right path, wrong method

    boom = http.get("/any", params={"mode": "boom"})
    assert boom.status_code == 500 and boom.json() == {"message": "Internal Server Error"}
    bad = http.get("/any", params={"mode": "bad"})
    assert bad.status_code == 500 and bad.json() == {"message": "Internal Server Error"}
    raw = http.get("/any", params={"mode": "raw"})
    assert raw.status_code == 200 and raw.json() == {"just": "a dict"}
    assert raw.headers["content-type"] == "application/json"
    text = http.get("/any", params={"mode": "text"})
    assert text.status_code == 200 and text.text == "plain text"
    binary = http.get("/any", params={"mode": "binary"})
    assert binary.content == b"\x89PNG\r\n" and binary.headers["content-type"] == "image/png"


def test_gateway_rejects_bodies_over_10_mb(stack: LocalStack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        response = client.post("/echo/big", content=b"x" * (10 * 1024 * 1024 + 1))
    assert response.status_code == 413


# -- Lambda Invoke API ------------------------------------------------------------------------


def test_invoke_through_boto3_and_between_functions(stack: LocalStack) -> None:
    lam = stack.client("lambda")
    response = lam.invoke(FunctionName="fixture-caller", Payload=json.dumps({"payload": {"hi": 1}}))
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    result = json.loads(response["Payload"].read())
    assert result["status"] == 200 and result["function_error"] is None and result["event_status"] == 202
    assert json.loads(result["payload"]["body"])["event"] == {"hi": 1}

    arn = f"arn:aws:lambda:{stack.region}:123456789012:function:EchoFunction"
    by_arn = lam.invoke(FunctionName=arn, Payload=b"{}")
    assert json.loads(by_arn["Payload"].read())["statusCode"] == 201
    queued = lam.invoke(FunctionName="SlowFunction", InvocationType="Event", Payload=b'{"sleep": 0}')
    assert queued["StatusCode"] == 202

    broken = lam.invoke(FunctionName="BrokenFunction", Payload=b"{}")
    assert broken["FunctionError"] == "Unhandled"
    error = json.loads(broken["Payload"].read())
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "module_that_does_not_exist" in error["errorMessage"]
    with pytest.raises(ClientError) as missing:
        lam.invoke(FunctionName="NoSuchFunction", Payload=b"{}")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as invalid:
        lam.invoke(FunctionName="EchoFunction", Payload=b"{not json")
    assert invalid.value.response["Error"]["Code"] == "InvalidRequestContentException"

    assert stack.invoke("CallerFunction", {"payload": {}})["status"] == 200
    with pytest.raises(FunctionError) as failed:
        stack.invoke("EchoFunction", {"queryStringParameters": {"mode": "boom"}})
    assert failed.value.error["errorType"] == "RuntimeError"
    assert failed.value.error["errorMessage"] == "echo exploded"
    stack.wait_idle(20)


def test_timeout_kills_environment_and_pool_runs_concurrently(stack: LocalStack) -> None:
    started = time.monotonic()
    with pytest.raises(FunctionError) as timed_out:
        stack.invoke("SlowFunction", {"sleep": 5})
    assert timed_out.value.error["errorType"] == "Sandbox.Timedout"
    assert time.monotonic() - started < 4.5
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(stack.invoke("SlowFunction", {"sleep": 0.5})))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r["pid"] for r in results}) == 2  # two warm environments served them side by side
    assert all(0 < r["remaining"] <= 1000 for r in results)


# -- resources, SQS and schedules ------------------------------------------------------------


def test_tables_and_queues_follow_the_template(stack: LocalStack) -> None:
    ddb = stack.client("dynamodb")
    table = ddb.describe_table(TableName="local-fixture-items")["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    (gsi,) = table["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "gsi1" and gsi["Projection"]["ProjectionType"] == "ALL"
    assert [k["AttributeName"] for k in gsi["KeySchema"]] == ["gsi1pk", "sk"]
    ttl = ddb.describe_time_to_live(TableName="local-fixture-items")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}

    sqs = stack.client("sqs")
    dlq_url = stack.resources["JobsDLQ"]
    assert dlq_url.endswith("/fixture-jobs-dlq")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    attrs = sqs.get_queue_attributes(QueueUrl=stack.resources["JobsQueue"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert attrs["VisibilityTimeout"] == "1"
    assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}


def test_a_paused_event_source_leaves_messages_queued_until_resumed(stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    ddb = stack.client("dynamodb")
    queue_url = stack.resources["JobsQueue"]

    def processed() -> int:
        return len(
            ddb.query(
                TableName="local-fixture-items",
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": "msg#paused-1"}},
            )["Items"]
        )

    stack.pause_queues()
    try:
        sqs.send_message(QueueUrl=queue_url, MessageBody="paused-1")
        deadline = time.monotonic() + 4  # several poll rounds and batching windows
        while time.monotonic() < deadline:
            assert processed() == 0
            time.sleep(0.2)
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        assert (
            int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
            == 1
        )
    finally:
        stack.pause_queues(False)
    deadline = time.monotonic() + 30
    while processed() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processed() == 1


def test_sqs_partial_batch_failure_redelivery_and_dlq(stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    ddb = stack.client("dynamodb")
    queue_url = stack.resources["JobsQueue"]
    attributes = {"kind": {"DataType": "String", "StringValue": "job"}}
    sqs.send_message_batch(
        QueueUrl=queue_url,
        Entries=[
            {"Id": "1", "MessageBody": "ok-1", "MessageAttributes": attributes},
            {"Id": "2", "MessageBody": "fail"},
            {"Id": "3", "MessageBody": "ok-2"},
        ],
    )
    stack.wait_idle(30)

    for body in ("ok-1", "ok-2"):
        items = ddb.query(
            TableName="local-fixture-items",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"msg#{body}"}},
        )["Items"]
        assert len(items) == 1, f"{body} must be processed exactly once"
    record = json.loads(
        ddb.query(
            TableName="local-fixture-items",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "msg#ok-1"}},
        )["Items"][0]["record"]["S"]
    )
    assert record["eventSource"] == "aws:sqs" and record["awsRegion"] == stack.region
    assert record["eventSourceARN"] == f"arn:aws:sqs:{stack.region}:123456789012:JobsQueue"
    assert record["body"] == "ok-1" and len(record["md5OfBody"]) == 32
    assert {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    } <= set(record["attributes"])
    assert record["messageAttributes"] == {
        "kind": {"stringValue": "job", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    }

    attempts = ddb.query(
        TableName="local-fixture-items",
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :g",
        ExpressionAttributeValues={":g": {"S": "attempts"}},
    )["Items"]
    assert sorted(a["sk"]["S"] for a in attempts) == ["1", "2"]  # delivered twice, then dead-lettered
    dead = sqs.receive_message(QueueUrl=stack.resources["JobsDLQ"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert [m["Body"] for m in dead["Messages"]] == ["fail"]
    counts = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert (
        counts["ApproximateNumberOfMessages"] == "0"
        and counts["ApproximateNumberOfMessagesNotVisible"] == "0"
    )


def test_schedules_fire_by_hand(stack: LocalStack) -> None:
    assert stack.fire_schedule("TickFunction", "EveryMinute") == {"ticked": True, "event": {"job": "tick"}}
    fired = httpx.post(f"{stack.invoke_url}/_local/schedules/TickFunction/Nightly", timeout=30)
    assert fired.status_code == 200
    event = fired.json()["event"]
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.scheduler"
    assert event["resources"] == [
        f"arn:aws:scheduler:{stack.region}:123456789012:schedule/default/TickFunction-Nightly"
    ]
    assert httpx.post(f"{stack.invoke_url}/_local/schedules/TickFunction/Nope").status_code == 404
    status = httpx.get(f"{stack.invoke_url}/_local/status").json()
    assert status["ready"] is True and status["timed_schedules"] is False
    assert {s["event"]: s["enabled"] for s in status["schedules"]} == {"EveryMinute": True, "Nightly": False}
    assert "ProdOnlyFunction" not in status["functions"]


def test_function_logs_go_to_files_without_secrets(stack: LocalStack, http: httpx.Client) -> None:
    assert http.get("/any", params={"mode": "marker"}).status_code == 201
    log_file = stack.logs_dir / "EchoFunction.log"
    wait_until(lambda: "mode='marker'" in log_file.read_text(), 10, "the echo log line")
    text = log_file.read_text()
    assert "START RequestId:" in text and "REPORT RequestId:" in text
    assert "RuntimeError: echo exploded" in text  # exceptions are logged with their traceback
    for path in stack.logs_dir.iterdir():
        assert SECRET not in path.read_text(errors="replace"), path
    info = json.loads((stack.state_dir / "stack.json").read_text())
    assert info["gateway_url"] == stack.gateway_url and info["invoke_url"] == stack.invoke_url
    assert info["dynamodb_endpoint"] == stack.dynamodb_endpoint and info["pid"] == os.getpid()
    assert info["resources"]["CallerFunction"] == "fixture-caller"


# -- lifecycle --------------------------------------------------------------------------------


def test_data_persists_across_restart_and_stop_leaves_no_process(tmp_path: Path) -> None:
    seen_while_starting: list[tuple[int, Any]] = []

    def probe(s: LocalStack) -> None:
        response = httpx.get(f"{s.gateway_url}/files/x", timeout=10)
        seen_while_starting.append((response.status_code, response.json()))

    first = LocalStack(FIXTURE, state_dir=tmp_path, schedules=False)
    first.before_ready.append(probe)
    with first:
        assert seen_while_starting == [(503, {"message": "starting"})]
        first.fire_schedule("TickFunction", "EveryMinute")
        with pytest.raises(RuntimeError, match="already runs"):
            LocalStack(FIXTURE, state_dir=tmp_path).start()
        pids = set(first.child_pids())
        pids |= descendants(*pids)
        assert len(pids) >= 4  # watchdog + java, watchdog + moto, at least one environment
    assert not [pid for pid in pids if running(pid)]
    assert not (tmp_path / "stack.json").exists()
    assert (tmp_path / "dynamodb").is_dir()

    with LocalStack(FIXTURE, state_dir=tmp_path, schedules=False) as second:
        ticks = second.client("dynamodb").query(
            TableName="local-fixture-items",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "tick"}},
        )["Items"]
        assert len(ticks) == 1 and json.loads(ticks[0]["event"]["S"]) == {"job": "tick"}


def test_killed_runner_leaves_no_orphans(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from b24stack import LocalStack\n"
        f"s = LocalStack(Path({str(FIXTURE)!r}), state_dir=Path({str(tmp_path)!r}), in_memory=True).start()\n"
        "s.invoke('SlowFunction', {})\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        pids = descendants(proc.pid)
        assert len(pids) >= 5  # two watchdogs, java, moto, one environment
    finally:
        proc.kill()
        proc.wait(timeout=10)
    wait_until(lambda: not [pid for pid in pids if running(pid)], 10, "every child to exit after SIGKILL")


def test_busy_port_fails_fast_without_starting_anything(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        before = descendants(os.getpid())
        with pytest.raises(RuntimeError, match="cannot listen"):
            LocalStack(FIXTURE, port=taken.getsockname()[1], state_dir=tmp_path, in_memory=True).start()
        assert descendants(os.getpid()) <= before


def test_local_services_alone(tmp_path: Path) -> None:
    with LocalServices(in_memory=True) as services:
        created = services.create_resources(FIXTURE / "template.yaml")
        assert created["ItemsTable"] == "local-fixture-items"
        assert created["JobsQueue"].startswith(services.sqs_endpoint)
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=services.dynamodb_endpoint,
            region_name="us-east-1",
            aws_access_key_id="other",
            aws_secret_access_key="other",
        )
        assert "local-fixture-items" in ddb.list_tables()["TableNames"]
        pids = set(services.pids())
    assert not [pid for pid in pids if running(pid)]


def test_cli_prints_one_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "b24stack", "--port", "0", "--state-dir", str(tmp_path), "--no-schedules"],
        cwd=FIXTURE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()
    threading.Thread(target=lambda: [None for _ in proc.stderr or []], daemon=True).start()
    try:
        line = lines.get(timeout=60)
        match = re.fullmatch(r"b24app local stack listening on (http://127\.0\.0\.1:\d+) \((.+)\)\n", line)
        assert match, line
        assert match[2].startswith("6 functions, 4 routes, 1 table, 2 queues, 1 schedule (timers off)")
        assert httpx.get(f"{match[1]}/files/special", timeout=30).status_code == 201
        pids = descendants(proc.pid)
        assert len(pids) >= 5
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0
    assert lines.empty()
    assert not [pid for pid in pids if running(pid)]
    assert not (tmp_path / "stack.json").exists()
