"""EventWorkerFunction: buffered events → the handlers of the app named by B24_APP (apps/)."""

from typing import Any

from b24core.aws.logs import logger
from b24core.entry.wiring import the_app
from b24core.entry.worker import build_worker

worker = build_worker(the_app().registry)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return worker(event, context)  # the guard's claims last the invocation's remaining time
