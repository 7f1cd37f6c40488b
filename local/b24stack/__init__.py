"""Run a SAM project (template.yaml) on one machine: no AWS account, no Docker, no internet.

``LocalStack`` starts DynamoDB Local and a moto server, creates the template's tables and
queues, runs every function in its own Lambda-like subprocess, and serves the HttpApi routes,
SQS event sources and schedules. ``LocalServices`` is the services part alone.

Names are imported lazily: the function subprocesses import ``b24stack.lambda_env`` and must not
pay for boto3 and the rest of the runner on every cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .services import LocalServices
    from .stack import FunctionError, LocalStack

__all__ = ["FunctionError", "LocalServices", "LocalStack"]


def __getattr__(name: str) -> Any:
    if name in ("LocalStack", "FunctionError"):
        from . import stack

        return getattr(stack, name)
    if name == "LocalServices":
        from .services import LocalServices

        return LocalServices
    raise AttributeError(f"module 'b24stack' has no attribute {name!r}")
