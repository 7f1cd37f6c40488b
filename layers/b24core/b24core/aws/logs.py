"""Logging that cannot leak secrets.

Every logger of the bundle formats through ``RedactingFormatter``: values under secret-looking keys
are replaced, and any secret value the process has seen (``remember_secret``) is masked wherever it
appears in the rendered line — so a token pasted into a message or an exception is masked too.

A request ``body`` is never logged: every Bitrix24 frame POST and event carries tokens in it (base64
for form bodies behind API Gateway, where no pattern could find them), and an operator may switch on
Powertools' event logging (``POWERTOOLS_LOGGER_LOG_EVENT``) while debugging.

The set of remembered values is bounded (the most recent ``MAX_REMEMBERED``): a warm Lambda meets
tokens of thousands of portals, and only values the bundle itself verified or issued belong in it,
never a value from an unverified request (a client could otherwise fill it, or make the logger mask
ordinary words).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

MASK = "***"
SECRET_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "application_token",
        "client_secret",
        "auth_id",
        "refresh_id",
        "auth",
        "code",
        "password",
        "token",
        "secret",
        "authorization",
        "body",
    }
)
_SECRET_KEY_RE = re.compile(r"(token|secret|password|auth_id|refresh_id)", re.IGNORECASE)
MAX_REMEMBERED = 4096
_known_secrets: OrderedDict[str, None] = OrderedDict()
_known_lock = threading.Lock()


def remember_secret(value: str | None) -> None:
    """Register a value that must never be printed (a token this process verified, issued or holds)."""
    if not value or len(value) < 6:
        return
    with _known_lock:
        _known_secrets[value] = None
        _known_secrets.move_to_end(value)
        while len(_known_secrets) > MAX_REMEMBERED:
            _known_secrets.popitem(last=False)


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with every secret-keyed entry masked."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            key = str(k).lower()
            if key in SECRET_KEYS or _SECRET_KEY_RE.search(key):
                out[k] = MASK if v not in (None, "") else v
            else:
                out[k] = redact(v)
        return out
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def mask_known(text: str) -> str:
    with _known_lock:
        secrets = list(_known_secrets)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFormatter(LambdaPowertoolsFormatter):
    def serialize(self, log: Any) -> str:
        return mask_known(super().serialize(redact(log) if isinstance(log, dict) else log))


def _default(obj: Any) -> str:
    return str(obj)


# One logger per process; handler modules decorate with ``logger.inject_lambda_context``.
logger = Logger(logger_formatter=RedactingFormatter(json_default=_default))


def dumps_safe(value: Any) -> str:
    """JSON for error bodies and CLI output, with secrets removed."""
    return mask_known(json.dumps(redact(value), default=_default, ensure_ascii=False))


def log_event(
    level: int,
    message: str,
    action: str,
    member_id: str | None = None,
    outcome: str | None = None,
    /,
    *,
    error: BaseException | None = None,
    **fields: Any,
) -> None:
    """One structured line: what happened (``action``) to which portal with what ``outcome``, and why
    (``error``'s type as ``reason``; never its text, which may carry a portal's answer), plus any
    ``fields``. The redacting formatter still masks every secret; the caller's code is the location."""
    extra: dict[str, Any] = {"action": action}
    if member_id is not None:
        extra["member_id"] = member_id
    if outcome is not None:
        extra["outcome"] = outcome
    if error is not None:
        extra["reason"] = type(error).__name__
    extra.update(fields)
    emit = {logging.DEBUG: logger.debug, logging.INFO: logger.info, logging.ERROR: logger.error}.get(
        level, logger.warning
    )
    emit(message, extra=extra, stacklevel=3)
