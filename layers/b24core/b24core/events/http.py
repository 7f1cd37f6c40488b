"""HTTP side of the events function: parse within limits, verify, enqueue, answer.

This is the cold-start critical path: it imports only the form parser, the verifier, the SQS sink and
boto3. Lifecycle events (ONAPPUNINSTALL, ONAPPUPDATE) are rare and import their handlers lazily.
"""

from __future__ import annotations

from functools import lru_cache
from logging import ERROR, WARNING
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from b24core.aws.apigw import HttpError, error_response, json_response, parse_event
from b24core.aws.logs import log_event
from b24core.aws.settings import get_settings
from b24core.bitrix.inbound import read_form
from b24core.events.auth_cache import AuthCache, DynamoAuthReader
from b24core.events.intake import EventIntake
from b24core.events.sqs import EnqueueFailed, SqsSink

metrics = Metrics(namespace=get_settings().metrics_namespace)
LIFECYCLE_EVENTS = frozenset({"ONAPPUNINSTALL", "ONAPPUPDATE"})
# Delivery signals, handled by b24core.events.signals (imported lazily): the probe event that proves
# the cloud queue reaches us, and the hint that a portal's offline queue has records to pull.
DELIVERY_EVENTS = frozenset({"ONAPPTEST", "ONOFFLINEEVENT"})


@lru_cache(maxsize=1)
def _intake() -> EventIntake:
    import boto3
    from botocore.config import Config

    settings = get_settings()
    session = boto3.session.Session(region_name=settings.region)
    # Retries must fit the request's budget (the function has seconds, Bitrix24 waits no longer):
    # short timeouts, two tries per send, and SqsSink's own three rounds on top.
    quick = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 2})
    reader = DynamoAuthReader(session.client("dynamodb", config=quick), settings.table_name)
    sink = SqsSink(session.client("sqs", config=quick), settings.events_queue_url)
    return EventIntake(AuthCache(reader, ttl_s=settings.auth_cache_ttl_s), sink)


def auth_cache() -> AuthCache:
    cache = _intake().portals
    assert isinstance(cache, AuthCache)
    return cache


def handle_event(event: dict[str, Any]) -> dict[str, Any]:
    settings = get_settings()
    try:
        req = parse_event(event, settings.max_body_bytes)
        if req.method != "POST":
            raise HttpError(405, "method_not_allowed", "use POST")
        form = read_form(req, settings.max_body_bytes)
        intake = _intake()
        name = str(form.get("event", "")).upper()
        if name == "ONAPPUPDATE":
            # It carries a NEW application_token: proven at the authorization server, not by the old one.
            return _update(form, req.host)
        if name in LIFECYCLE_EVENTS:
            _name, member_id = intake.verify(form)
            return _lifecycle(name, member_id, form)
        if name in DELIVERY_EVENTS:
            _name, member_id = intake.verify(form)
            _adopt_offered_pair(form)
            from b24core.events import signals as delivery

            return json_response(200, delivery.on_delivery_event(name, member_id, form))
        accepted = intake.accept(form)
    except HttpError as err:
        # A 5xx is an event Bitrix24 will not send again (a delivery signal not handed over, say): it
        # counts with the events the queue did not take, under the alarm for events not stored.
        _count("EventsNotStored" if err.status >= 500 else "EventsRejected", err.code)
        return error_response(err)
    except EnqueueFailed:
        _count("EventsNotStored", "queue_unavailable")
        log_event(ERROR, "event not stored", "intake", outcome="enqueue_failed")
        return json_response(503, {"error": "queue_unavailable", "message": "event not stored; try again"})
    # Success is counted by the HTTP API's own 2xx metrics on the /events route: no per-event log line
    # or EMF blob on the hot path.
    return {"statusCode": 200, "headers": _OK_HEADERS, "body": _OK_BODY % accepted.event}


_OK_HEADERS = {"content-type": "application/json; charset=utf-8", "cache-control": "no-store"}
_OK_BODY = '{"status": "accepted", "event": "%s"}'


def _count(metric: str, reason: str) -> None:
    """Failures are rare and worth an alarm: one EMF line each, flushed at once."""
    metrics.add_dimension(name="reason", value=reason)
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()
    if metric == "EventsNotStored":  # once more without a reason: what EventsNotStoredAlarm watches
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        metrics.flush_metrics()


def _update(form: dict[str, Any], request_host: str) -> dict[str, Any]:
    """ONAPPUPDATE → the install function (b24core.trust.handover), then forget the cached (old) token."""
    from b24core.trust.handover import LIFECYCLE, hand_over

    auth = form.get("auth")
    member_id = auth.get("member_id") if isinstance(auth, dict) else None
    try:
        return hand_over(LIFECYCLE, form, request_host)
    finally:
        if isinstance(member_id, str) and member_id:
            auth_cache().drop(member_id)


def _adopt_offered_pair(form: dict[str, Any]) -> None:
    """A verified event that carries a fresh token pair (ONOFFLINEEVENT does) may heal a lost portal:
    the install function checks the pair (an administrator's, vouched for by the auth server).

    Rare, so its imports stay off the hot path; it never fails the intake.
    """
    auth = form.get("auth")
    if not isinstance(auth, dict) or not auth.get("refresh_token"):
        return
    try:
        from b24core.trust.handover import ADOPT, hand_over

        hand_over(ADOPT, form)
    except Exception as exc:
        log_event(WARNING, "offered token pair not adopted", "heal", error=exc, outcome="skipped")


def _lifecycle(name: str, member_id: str, form: dict[str, Any]) -> dict[str, Any]:
    """Verified lifecycle event → the install function, then forget the cached token."""
    from b24core.trust.handover import LIFECYCLE, hand_over

    try:
        if name == "ONAPPUNINSTALL":
            return hand_over(LIFECYCLE, form)
        return json_response(200, {"status": "ignored", "event": name})
    finally:
        auth_cache().drop(member_id)
