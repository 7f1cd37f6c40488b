"""The AWS services a local stack talks to: DynamoDB Local and a moto server.

DynamoDB Local is AWS's own engine, so conditional writes, GSIs and transactions behave like the
cloud; moto serves SQS (with real visibility timeouts and redrive to a DLQ) and anything else a
function might call through ``AWS_ENDPOINT_URL``. Both run as separate processes on free
loopback ports so a crashing or slow function can never take them down, and tables persist in
a state directory across restarts unless the caller asks for in-memory tables.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from .intrinsics import Resolver
from .procs import free_port, spawn_watched, stop_process, wait_http
from .tables import create_request, global_indexes
from .template import KMS_KEY_TYPE, QUEUE_TYPE, TABLE_TYPE, Template, load_template

__all__ = ["DYNAMODB_LOCAL_DIR", "LocalServices", "default_region"]

log = logging.getLogger("b24stack")

DYNAMODB_LOCAL_DIR = (
    Path(__file__).resolve().parent.parent
    / "dynamodb"
    / "node_modules"
    / "amplify-dynamodb-simulator"
    / "emulator"
)
_DUMMY_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
_START_TIMEOUT = 60.0

_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "MaximumMessageSize",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


# The moto server, quiet: werkzeug would log every long poll of every SQS poller. Its SQS model is made
# linear in the queued messages (b24stack/moto_sqs.py: at 5,000 queued one ReceiveMessage took 0.1-2 s).
_MOTO_MAIN = (
    "import logging, sys; logging.getLogger('werkzeug').setLevel(logging.WARNING); "
    f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r}); "
    "import b24stack.moto_sqs as _fast; _fast.install(); "
    "from moto.server import main; main(sys.argv[1:])"
)


class LocalServices:
    """DynamoDB Local + moto, started together; usable alone for integration tests.

    ``state_dir`` holds ``dynamodb/`` (the tables, unless ``in_memory``) and ``logs/``; without
    one the services log into a temporary directory removed on stop and tables live in memory.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        in_memory: bool = True,
        region: str | None = None,
        logs_dir: Path | None = None,
    ) -> None:
        if state_dir is None and not in_memory:
            raise ValueError("persistent tables need a state_dir")
        self.state_dir = Path(state_dir).resolve() if state_dir is not None else None
        self.in_memory = in_memory
        self.region = region or default_region()
        self._tmp: Path | None = None
        self._logs_dir = logs_dir
        self._procs: list[subprocess.Popen[bytes]] = []
        self.dynamodb_endpoint = ""
        self.moto_endpoint = ""
        self.resolver: Resolver | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def sqs_endpoint(self) -> str:
        return self.moto_endpoint

    @property
    def logs_dir(self) -> Path:
        if self._logs_dir is None:
            if self.state_dir is not None:
                self._logs_dir = self.state_dir / "logs"
            else:
                self._tmp = Path(tempfile.mkdtemp(prefix="b24stack-"))
                self._logs_dir = self._tmp / "logs"
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        return self._logs_dir

    def start(self) -> LocalServices:
        try:
            ddb = self._start_dynamodb()
            moto = self._start_moto()
            # Both boot in parallel; DynamoDB Local (a JVM) is the slow one.
            waits = [
                threading.Thread(
                    target=self._wait, args=(f"{self.dynamodb_endpoint}/", ddb, "DynamoDB Local"), daemon=True
                ),
                threading.Thread(
                    target=self._wait,
                    args=(f"{self.moto_endpoint}/moto-api/", moto, "moto server"),
                    daemon=True,
                ),
            ]
            self._wait_errors: list[BaseException] = []
            for t in waits:
                t.start()
            for t in waits:
                t.join()
            if self._wait_errors:
                raise self._wait_errors[0]
        except BaseException:
            self.stop()
            raise
        log.debug("services up: dynamodb %s, moto %s", self.dynamodb_endpoint, self.moto_endpoint)
        return self

    def _wait(self, url: str, proc: subprocess.Popen[bytes], what: str) -> None:
        try:
            wait_http(url, proc=proc, timeout=_START_TIMEOUT, what=what)
        except BaseException as exc:
            self._wait_errors.append(exc)

    def stop(self) -> None:
        procs, self._procs = self._procs, []
        threads = [threading.Thread(target=stop_process, args=(p,)) for p in procs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
            self._logs_dir = None

    def __enter__(self) -> LocalServices:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def _start_dynamodb(self) -> subprocess.Popen[bytes]:
        java = shutil.which("java")
        jar = DYNAMODB_LOCAL_DIR / "DynamoDBLocal.jar"
        if java is None:
            raise RuntimeError(
                "java is not installed; DynamoDB Local needs a JRE (apt-get install default-jre)"
            )
        if not jar.is_file():
            raise RuntimeError(f"DynamoDB Local is missing at {jar}; run `make setup`")
        port = free_port()
        cmd = [
            java,
            "-XX:TieredStopAtLevel=1",
            f"-Djava.library.path={DYNAMODB_LOCAL_DIR / 'DynamoDBLocal_lib'}",
        ]
        # -sharedDb: one database whatever the credentials/region, so every client sees the same
        # tables (without it DynamoDB Local keeps a separate database per access key and region).
        cmd += ["-jar", str(jar), "-port", str(port), "-disableTelemetry", "-sharedDb"]
        if self.in_memory:
            cmd.append("-inMemory")
        else:
            assert self.state_dir is not None
            db_dir = self.state_dir / "dynamodb"
            db_dir.mkdir(parents=True, exist_ok=True)
            cmd += ["-dbPath", str(db_dir)]
        env = {**os.environ, "DDB_LOCAL_TELEMETRY": "0"}
        proc = spawn_watched(cmd, log_path=self.logs_dir / "dynamodb.log", env=env)
        self._procs.append(proc)
        self.dynamodb_endpoint = f"http://127.0.0.1:{port}"
        return proc

    def _start_moto(self) -> subprocess.Popen[bytes]:
        port = free_port()
        cmd = [sys.executable, "-c", _MOTO_MAIN, "-H", "127.0.0.1", "-p", str(port)]
        env = {**os.environ, "MOTO_PORT": str(port)}
        proc = spawn_watched(cmd, log_path=self.logs_dir / "moto.log", env=env)
        self._procs.append(proc)
        self.moto_endpoint = f"http://127.0.0.1:{port}"
        return proc

    # -- clients ------------------------------------------------------------------------------

    def endpoint_for(self, service: str) -> str:
        return self.dynamodb_endpoint if service in ("dynamodb", "dynamodbstreams") else self.moto_endpoint

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client for ``service`` pointed at the local endpoint, with dummy credentials."""
        return boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_for(service),
            region_name=self.region,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, **config),
            **_DUMMY_CREDENTIALS,
        )

    # -- resources ----------------------------------------------------------------------------

    def create_resources(
        self, template: Template | Path | str, resolver: Resolver | None = None
    ) -> dict[str, str]:
        """Create every table and queue of ``template``; logical id -> table name / queue URL."""
        tmpl = template if isinstance(template, Template) else load_template(template)
        if resolver is None:
            resolver = Resolver(tmpl, region=self.region, environ=dict(os.environ))
        resolver.sqs_endpoint = self.moto_endpoint
        self.resolver = resolver
        created: dict[str, str] = {}
        ddb = self.client("dynamodb")
        for logical_id, _res in tmpl.of_type(TABLE_TYPE):
            if resolver.resource_enabled(logical_id):
                created[logical_id] = _ensure_table(ddb, resolver, logical_id)
        sqs = self.client("sqs")
        for logical_id in _queue_order(tmpl):
            if resolver.resource_enabled(logical_id):
                created[logical_id] = _create_queue(sqs, resolver, logical_id)
        kms = None
        for logical_id, _res in tmpl.of_type(KMS_KEY_TYPE):
            if resolver.resource_enabled(logical_id):
                kms = kms or self.client("kms")
                created[logical_id] = _create_key(kms, resolver, logical_id)
        return created


# -- DynamoDB tables --------------------------------------------------------------------------


def _ensure_table(ddb: Any, resolver: Resolver, logical_id: str) -> str:
    """Create the table as the template describes it, or top up an existing one (GSIs, TTL)."""
    props = resolver.resolve(resolver.template.properties(logical_id))
    name = resolver.physical_name(logical_id)
    try:
        existing = ddb.describe_table(TableName=name)["Table"]
    except ddb.exceptions.ResourceNotFoundException:
        existing = None
    if existing is None:
        ddb.create_table(**create_request(props, name))
        log.info("created table %s", name)
    else:
        have = {g["IndexName"] for g in existing.get("GlobalSecondaryIndexes") or []}
        for gsi in global_indexes(props):
            if gsi["IndexName"] not in have:
                ddb.update_table(
                    TableName=name,
                    AttributeDefinitions=props["AttributeDefinitions"],
                    GlobalSecondaryIndexUpdates=[{"Create": gsi}],
                )
                log.info("added index %s to table %s", gsi["IndexName"], name)
    ttl = props.get("TimeToLiveSpecification") or {}
    if ttl.get("AttributeName") and str(ttl.get("Enabled", True)).lower() == "true":
        current = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
    table = ddb.describe_table(TableName=name)["Table"]
    if table.get("LatestStreamArn"):
        resolver.attrs[(logical_id, "StreamArn")] = table["LatestStreamArn"]
    resolver.refs[logical_id] = name
    return name


# -- SQS queues -------------------------------------------------------------------------------


def _references(value: Any, candidates: set[str]) -> set[str]:
    """Logical ids among ``candidates`` that ``value`` refers to (Ref, GetAtt or inside Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and arg in candidates:
                found.add(arg)
            elif key == "Fn::GetAtt":
                target = arg.split(".", 1)[0] if isinstance(arg, str) else (arg[0] if arg else None)
                if target in candidates:
                    found.add(str(target))
            elif key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                found |= {c for c in candidates if f"${{{c}" in str(text)}
            found |= _references(arg, candidates)
    elif isinstance(value, list):
        for item in value:
            found |= _references(item, candidates)
    return found


def _queue_order(tmpl: Template) -> list[str]:
    """Queues ordered so a dead-letter queue exists before the queue that redrives to it."""
    queues = [logical_id for logical_id, _ in tmpl.of_type(QUEUE_TYPE)]
    ids = set(queues)
    deps = {q: _references(tmpl.properties(q), ids - {q}) for q in queues}
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(q: str) -> None:
        if q in ordered or q in visiting:
            return
        visiting.add(q)
        for dep in sorted(deps[q]):
            visit(dep)
        visiting.discard(q)
        ordered.append(q)

    for q in queues:
        visit(q)
    return ordered


def _attr_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _create_queue(sqs: Any, resolver: Resolver, logical_id: str) -> str:
    props = resolver.resolve(resolver.template.properties(logical_id))
    name = resolver.physical_name(logical_id)
    attributes = {key: _attr_str(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
    if name.endswith(".fifo"):
        attributes["FifoQueue"] = "true"
    redrive = props.get("RedrivePolicy")
    if isinstance(redrive, str):
        redrive = json.loads(redrive)
    if isinstance(redrive, dict) and redrive.get("deadLetterTargetArn"):
        attributes["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": str(redrive["deadLetterTargetArn"]),
                "maxReceiveCount": int(redrive.get("maxReceiveCount", 10)),
            }
        )
    url = str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    resolver.refs[logical_id] = url
    resolver.attrs[(logical_id, "Arn")] = arn
    resolver.attrs[(logical_id, "QueueUrl")] = url
    log.info("created queue %s", name)
    return url


# -- KMS keys ---------------------------------------------------------------------------------


def _create_key(kms: Any, resolver: Resolver, logical_id: str) -> str:
    """A real key on the moto server, so functions make real KMS calls over HTTP (Ref: key id)."""
    props = resolver.resolve(resolver.template.properties(logical_id))
    extra = {"Policy": json.dumps(props["KeyPolicy"])} if isinstance(props.get("KeyPolicy"), dict) else {}
    meta = kms.create_key(
        Description=str(props.get("Description") or logical_id),
        KeyUsage=str(props.get("KeyUsage") or "ENCRYPT_DECRYPT"),
        **extra,
    )["KeyMetadata"]
    if props.get("EnableKeyRotation"):
        kms.enable_key_rotation(KeyId=meta["KeyId"])
    resolver.refs[logical_id] = str(meta["KeyId"])
    resolver.attrs[(logical_id, "Arn")] = str(meta["Arn"])
    return str(meta["KeyId"])
