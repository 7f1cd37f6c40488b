"""One `batch` request of the prefetch: up to 50 objects read, each answer put on its event."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from b24core.bitrix.errors import B24Error, OperationTimeLimit, QueryLimitExceeded
from b24core.tokens.outcomes import PortalUnavailable
from b24core.worker.limited_client import LimitedClient
from b24core.worker.plan import Plan
from b24core.worker.read_marks import ObjectKey, read_time


def read_chunk(
    plan: Plan,
    client: LimitedClient,
    chunk: list[tuple[str, tuple[str, str]]],
    marks: dict[str, tuple[ObjectKey, float]],
    wait_up_to: float,
) -> Exception | None:
    """Read the chunk's objects (messageId -> (method, id)); returns what stopped the reads, or None.
    A read object becomes its event's ``object`` and a read mark; a gone one skips its event."""
    commands = {f"r{i}": (method, {"id": oid}) for i, (_mid, (method, oid)) in enumerate(chunk)}
    try:
        answer = client.batch(commands, wait_up_to=wait_up_to)
    except (QueryLimitExceeded, OperationTimeLimit, PortalUnavailable, B24Error) as exc:
        return exc
    for key, (mid, obj_key) in zip(commands, chunk, strict=True):
        obj = answer.result.get(key)
        if isinstance(obj, dict):
            plan.events[mid] = replace(plan.events[mid], object=obj)
            at = read_time(answer.time.get(key))
            if at is not None:
                marks[mid] = (obj_key, at)
        elif _not_found(answer.error.get(key)):
            plan.skip[mid] = "object_gone"  # deleted since the event; its delete event follows
        else:
            plan.failed.add(mid)
    return None


def _not_found(error: Any) -> bool:
    text = json.dumps(error).lower() if error is not None else ""
    return "not found" in text
