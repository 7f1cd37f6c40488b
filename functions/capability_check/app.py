"""CapabilityCheckFunction: what this portal has of what the app needs; binds the app's events.

Invoked by the install (synchronously, within a time budget), after ONAPPUPDATE (asynchronously),
by its schedule for portals whose re-check is due, and on demand (`b24app portals recheck`).
"""

from typing import Any

from b24core.aws.logs import logger
from b24core.entry.capability_check import handle_capability_event


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_capability_event(event, context)
