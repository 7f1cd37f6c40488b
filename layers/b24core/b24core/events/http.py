"""HTTP side of the events function: parse within limits, verify, enqueue, answer."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from b24core.apigw import HttpError, error_response, json_response, parse_event
from b24core.events.intake import EventIntake
from b24core.events.lifecycle import handle_uninstall
from b24core.events.sqs import EnqueueFailed, SqsSink
from b24core.logs import logger
from b24core.settings import get_settings


@lru_cache(maxsize=1)
def _intake() -> EventIntake:
    from b24core import runtime

    settings = get_settings()
    return EventIntake(runtime.portal_store(), SqsSink(runtime.boto_client("sqs"), settings.events_queue_url))


def handle_event(event: dict[str, Any]) -> dict[str, Any]:
    from b24core.web import read_form

    settings = get_settings()
    try:
        req = parse_event(event, settings.max_body_bytes)
        if req.method != "POST":
            raise HttpError(405, "method_not_allowed", "use POST")
        form = read_form(req, settings.max_body_bytes)
        intake = _intake()
        if str(form.get("event", "")).upper() == "ONAPPUNINSTALL":
            _name, _member, portal = intake.verify(form)
            handle_uninstall(portal, form)
            return json_response(200, {"status": "uninstalled"})
        accepted = intake.accept(form)
    except HttpError as err:
        return error_response(err)
    except EnqueueFailed:
        logger.error("event not stored", extra={"action": "intake", "outcome": "enqueue_failed"})
        return json_response(503, {"error": "queue_unavailable", "message": "event not stored; try again"})
    return json_response(200, {"status": "accepted", "event": accepted.event, "at": int(time.time())})
