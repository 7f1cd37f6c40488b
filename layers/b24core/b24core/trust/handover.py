"""Lifecycle events cross from the internet-facing events function to one that may write.

The events function verifies every event and may read the table, but it cannot write or delete a
portal record (template.yaml): a bug in intake must not be able to destroy data. ONAPPUPDATE,
ONAPPUNINSTALL and the token pairs some events offer are handed to the install function with a
synchronous invoke (the answer goes back to Bitrix24; nothing waits in a queue with a token in it),
and checked again there.
"""

from __future__ import annotations

import json
from functools import lru_cache
from logging import ERROR
from typing import Any

from b24core.aws.apigw import HttpError
from b24core.aws.logs import log_event
from b24core.aws.settings import get_settings

LIFECYCLE = "lifecycle"
ADOPT = "adopt"


@lru_cache(maxsize=1)
def _lambda() -> Any:
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=2, read_timeout=20, retries={"max_attempts": 1, "mode": "standard"})
    return boto3.client("lambda", region_name=get_settings().region, config=config)


def hand_over(action: str, form: dict[str, Any], request_host: str = "") -> dict[str, Any]:
    """Called by the events function: the install function's HTTP-shaped answer, or 503."""
    function = get_settings().install_function
    if not function:
        raise HttpError(503, "lifecycle_not_configured", "INSTALL_FUNCTION is not set")
    payload = {"action": action, "form": form, "host": request_host}
    try:
        resp = _lambda().invoke(
            FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(payload).encode()
        )
        if resp.get("FunctionError"):
            raise RuntimeError("the install function failed")
        answer = json.loads(resp["Payload"].read() or b"null")
    except Exception as exc:
        log_event(ERROR, "lifecycle event not handed over", action, error=exc, outcome="failed")
        raise HttpError(503, "lifecycle_not_recorded", "the event could not be handled; try again") from None
    if not isinstance(answer, dict) or "statusCode" not in answer:
        raise HttpError(503, "lifecycle_not_recorded", "the event could not be handled; try again")
    return answer
