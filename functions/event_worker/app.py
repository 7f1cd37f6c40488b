"""EventWorkerFunction: buffered events → the app's handlers (see example_app.py)."""

from typing import Any

import example_app  # noqa: F401  (registers the app's handlers)

from b24core.aws.logs import logger
from b24core.entry.worker import build_worker
from b24core.worker.handlers import registry

worker, idempotency = build_worker(registry)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    return worker(event, context)
