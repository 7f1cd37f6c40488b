"""ChangePollFunction: the change audit of every portal, and change polling of those whose events
cannot come (b24core.delivery.audit_round); fired by its schedule (default every minute)."""

from typing import Any

from b24core.aws.logs import logger
from b24core.entry.change_poll import handle_poll_event


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_poll_event(event, context)
