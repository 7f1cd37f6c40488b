"""Delivery signals at intake: ONAPPTEST (a probe came through the queue) and ONOFFLINEEVENT (the
portal's offline queue has records). Both were verified by intake (application_token) before this.

This runs in the events function, the cold-start critical one: it imports nothing heavy. It hands
the signal to the OfflinePullFunction with an asynchronous invoke (the events function may not
write the table) and answers 200 only once Lambda has accepted it; the form's tokens stay here.
"""

from __future__ import annotations

from functools import lru_cache
from logging import ERROR
from typing import Any

from b24core.aws.apigw import HttpError
from b24core.aws.logs import log_event
from b24core.aws.settings import get_settings

PROBE_EVENT = "ONAPPTEST"
WAKE_EVENT = "ONOFFLINEEVENT"
PROBE_PARAM = "probe"  # event.test?probe=NONCE comes back as data[QUERY][probe]=NONCE
_HEX = frozenset("0123456789abcdef")


def probe_id_from(form: dict[str, Any]) -> str:
    """The nonce an ONAPPTEST carries back (only a short hex string is believed)."""
    data = form.get("data")
    query = data.get("QUERY") if isinstance(data, dict) else None
    value = query.get(PROBE_PARAM) if isinstance(query, dict) else None
    if isinstance(value, str) and 0 < len(value) <= 64 and set(value) <= _HEX:
        return value
    return ""


@lru_cache(maxsize=1)
def _lambda() -> Any:
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 2, "mode": "standard"})
    return boto3.client("lambda", region_name=get_settings().region, config=config)


def _hand_over(payload: dict[str, Any]) -> None:
    import json

    function = get_settings().delivery.pull_function
    if not function:
        raise HttpError(503, "delivery_not_configured", "OFFLINE_PULL_FUNCTION is not set")
    try:
        _lambda().invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(payload).encode())
    except Exception as exc:
        log_event(
            ERROR,
            "delivery signal not handed over",
            "delivery",
            payload.get("member_id"),
            "failed",
            error=exc,
            event=payload.get("trigger"),
        )
        raise HttpError(503, "delivery_not_recorded", "the signal could not be recorded; try again") from None


def on_delivery_event(name: str, member_id: str, form: dict[str, Any]) -> dict[str, Any]:
    if name == PROBE_EVENT:
        _hand_over(
            {
                "action": "probe_arrived",
                "member_id": member_id,
                "probe_id": probe_id_from(form),
                "trigger": name,
            }
        )
        return {"status": "probe_received", "event": name}
    _hand_over({"action": "pull", "member_id": member_id, "trigger": name})
    return {"status": "pull_requested", "event": name}
