"""InstallFunction: POST /install (install frame or ONAPPINSTALL) and GET /health."""

from typing import Any

from b24core.aws.logs import logger
from b24core.entry.install_http import handle_install


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_install(event)
