"""TokenRefreshFunction: the keep-alive sweep over portals whose refresh token is getting old."""

from typing import Any

from b24core.aws.logs import logger
from b24core.entry.token_refresh import handle_sweep_event


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_sweep_event(event, context)
