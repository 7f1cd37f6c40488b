"""ChangePollFunction: change polling for webhook-connected portals cut off from the event queue
(b24core.delivery.polling); fired by its schedule (default every minute)."""

from typing import Any

from b24core.aws.logs import logger
from b24core.entry.change_poll import handle_poll_event


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_poll_event(event, context)
