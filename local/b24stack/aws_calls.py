"""Record the AWS calls a function makes (service, operation, the names of what it touches).

The local stack enforces no IAM, so a policy that misses a grant works here and fails in AWS. With
``B24STACK_AWS_CALLS_DIR`` set, every Lambda environment registers botocore's
``provide-client-params`` hook on each client it creates (boto3's and pynamodb's alike) and appends
one JSON line per call to ``<dir>/<function>.jsonl``; ``b24stack.iam`` then checks each call against
the function's role as the SAM translator builds it from template.yaml. Only resource names are
recorded, never a parameter's value (items carry tokens).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

ENV_VAR = "B24STACK_AWS_CALLS_DIR"
_NAME_KEYS = ("TableName", "IndexName", "QueueUrl", "FunctionName", "Name", "KeyId", "SecretId", "TopicArn")


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
