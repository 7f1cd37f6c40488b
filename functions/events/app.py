"""EventsFunction: POST /events — verify, strip tokens, buffer in SQS, acknowledge."""

from typing import Any

from b24core.aws.logs import logger
from b24core.events.http import handle_event


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_event(event)
