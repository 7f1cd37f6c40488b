"""Record the AWS calls a function makes (service, operation, the names of what it touches).

The local stack enforces no IAM, so a policy that misses a grant works here and fails in AWS. With
``B24STACK_AWS_CALLS_DIR`` set, every Lambda environment registers botocore's
``provide-client-params`` hook on each client it creates (boto3's and pynamodb's alike) and appends
one JSON line per call to ``<dir>/<function>.jsonl``; ``b24stack.iam`` then checks each call against
the function's role as the SAM translator builds it from template.yaml. Only resource names are
recorded, never a parameter's value (items carry tokens).

For what a call costs (bench/steady_traffic.py turns them into DynamoDB request units), a DynamoDB line
also says how many items it touched - ``Items``: the keys or requests of a BatchGetItem/BatchWriteItem,
the entries of a transaction, 1 for a single-item call (a Query's or Scan's count is in its answer, not
its parameters: none) - and ``Consistent`` when it asked for strongly consistent reads (a batch read:
when every table of it did). Counts and flags only, still never a value.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

ENV_VAR = "B24STACK_AWS_CALLS_DIR"
_NAME_KEYS = ("TableName", "IndexName", "QueueUrl", "FunctionName", "Name", "KeyId", "SecretId", "TopicArn")
_SINGLE_ITEM = ("GetItem", "PutItem", "UpdateItem", "DeleteItem")


def _names(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: params[k] for k in _NAME_KEYS if isinstance(params.get(k), str)}
    items = params.get("RequestItems")
    if isinstance(items, dict):
        out["Tables"] = sorted(str(t) for t in items)
    transact = params.get("TransactItems")
    if isinstance(transact, list):
        tables, kinds = set(), set()
        for entry in transact:
            for kind, op in entry.items() if isinstance(entry, dict) else ():
                if isinstance(op, dict) and isinstance(op.get("TableName"), str):
                    tables.add(op["TableName"])
                    kinds.add(str(kind))
        out["Tables"] = sorted(tables)
        out["TransactOps"] = sorted(kinds)  # IAM decides each contained action (b24stack.iam)
    return out


def _counts(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """How many items a DynamoDB call touches and whether it reads strongly consistent (no values)."""
    out: dict[str, Any] = {}
    items = params.get("RequestItems")
    transact = params.get("TransactItems")
    if operation in _SINGLE_ITEM:
        out["Items"] = 1
    elif isinstance(items, dict):
        tables = list(items.values())
        if operation == "BatchGetItem":
            keys = [v.get("Keys") if isinstance(v, dict) else None for v in tables]
            out["Items"] = sum(len(k) for k in keys if isinstance(k, list))
            if tables and all(isinstance(v, dict) and v.get("ConsistentRead") is True for v in tables):
                out["Consistent"] = True
        else:
            out["Items"] = sum(len(v) for v in tables if isinstance(v, list))
    elif isinstance(transact, list):
        out["Items"] = len(transact)
    if params.get("ConsistentRead") is True:
        out["Consistent"] = True
    return out


def install(directory: str, function_name: str) -> None:
    """Patch botocore so every client of this process reports its calls."""
    import botocore.session

    path = Path(directory) / f"{function_name or 'unknown'}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        line = {
            "service": model.service_model.service_name,
            "signing": model.service_model.signing_name,
            "operation": model.name,
            **_names(params or {}),
        }
        if line["service"] == "dynamodb":
            line.update(_counts(model.name, params or {}))
        with lock, path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    original = botocore.session.Session.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        client.meta.events.register("provide-client-params.*.*", record)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]


def install_from_env() -> None:
    directory = os.environ.get(ENV_VAR)
    if directory:
        install(directory, os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""))
