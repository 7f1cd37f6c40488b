"""Inbound Bitrix24 payloads (event posts, install frames, callbacks) parsed once into typed values."""

from __future__ import annotations

from typing import Any

from b24core.aws.apigw import FORM_TYPES, HttpError, Request
from b24core.bitrix.forms import FormError, FormLimits, parse_form


def read_form(req: Request, max_bytes: int) -> dict[str, Any]:
    """The request's form (Bitrix24 posts PHP-bracket forms); 415/400 for anything else."""
    if req.content_type not in FORM_TYPES:
        raise HttpError(415, "unsupported_media_type", "expected application/x-www-form-urlencoded")
    try:
        return parse_form(req.body, FormLimits(max_bytes=max_bytes))
    except FormError as exc:
        raise HttpError(400, "bad_form", str(exc)) from None
