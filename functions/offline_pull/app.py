"""OfflinePullFunction: delivery probes (does the event queue reach us?) and pulls of the offline
event queue for portals it does not reach, or that chose lossless mode.

Fired every minute (pulls) and by the probe schedule; invoked asynchronously by the events function
on ONAPPTEST / ONOFFLINEEVENT, and on demand by `b24app portals probe|set-mode`.
"""

from typing import Any

from b24core.aws.logs import logger
from b24core.entry.offline_pull import handle_delivery_event


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_delivery_event(event, context)
