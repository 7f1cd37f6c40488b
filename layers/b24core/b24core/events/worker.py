"""The worker: SQS records → typed events → registered handlers, with partial batch responses.

A record whose handler fails is reported back alone (batchItemFailures) so the rest of the batch is
not retried; after the queue's maxReceiveCount it moves to the DLQ.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from b24core import runtime
from b24core.events.message import QueuedEvent
from b24core.logs import logger
from b24core.portals.states import PortalState
from b24core.registry import Event, HandlerContext, Registry
from b24core.tokens import PortalUnavailable


class Worker:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.processor = BatchProcessor(event_type=EventType.SQS)

    def handle_record(self, record: SQSRecord) -> None:
        try:
            message = QueuedEvent.from_json(record.body)
        except (ValueError, KeyError, TypeError):
            logger.error(
                "unreadable queue message dropped",
                extra={"action": "dispatch", "outcome": "dropped", "reason": "malformed"},
            )
            return
        event = Event.from_message(message)
        log = {"action": "dispatch", "event": event.name, "member_id": event.member_id}
        if not self.registry.handlers_for(event.name):
            logger.info("no handler", extra={**log, "outcome": "ignored"})
            return
        portal = runtime.portal_store().get(event.member_id)
        if portal is None or portal.state != PortalState.ACTIVE:
            logger.warning("portal not active; event dropped", extra={**log, "outcome": "dropped"})
            return
        ctx = HandlerContext(portal=portal, client=runtime.portal_client(portal))
        try:
            ran = self.registry.dispatch(event, ctx)
        except PortalUnavailable as exc:
            logger.warning(
                "portal unavailable; event dropped", extra={**log, "outcome": "dropped", "reason": str(exc)}
            )
            return
        logger.info("event handled", extra={**log, "outcome": "handled", "handlers": ran})

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        response = process_partial_response(
            event=event, record_handler=self.handle_record, processor=self.processor, context=context
        )
        return dict(response)
