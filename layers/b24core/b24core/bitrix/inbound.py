"""Inbound Bitrix24 payloads (event posts, install frames, callbacks) parsed once into typed values.

Every form is parsed here (PHP bracket notation, within limits) and its ``auth`` block or frame fields
read into one typed claim, with a 400 for anything missing or malformed: nothing downstream reads a
raw form field of a token."""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class InstallClaim:
    path: str  # "ui" (install frame) or "event" (ONAPPINSTALL)
    member_id: str
    domain: str
    client_endpoint: str
    server_endpoint: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    application_token: str = field(repr=False)
    scope: str
    language: str
    user_id: str


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _require(fields: dict[str, str]) -> None:
    missing = sorted(name for name, value in fields.items() if not value)
    if missing:
        raise HttpError(400, "missing_fields", f"missing required fields: {', '.join(missing)}")


def _expires_in(raw: str) -> int:
    try:
        value = int(raw or "3600")
    except ValueError:
        raise HttpError(400, "bad_field", "expires_in / AUTH_EXPIRES is not a number") from None
    return max(0, min(value, 24 * 3600))


def claim_from_frame(query: dict[str, str], form: dict[str, Any]) -> InstallClaim:
    """The install frame of an app with UI (settings/oauth/simple-way.md)."""
    domain = _text(query.get("DOMAIN") or form.get("DOMAIN"))
    protocol = _text(query.get("PROTOCOL") or form.get("PROTOCOL") or "1")
    fields = {
        "DOMAIN": domain,
        "AUTH_ID": _text(form.get("AUTH_ID")),
        "REFRESH_ID": _text(form.get("REFRESH_ID")),
        "APPLICATION_TOKEN": _text(form.get("APPLICATION_TOKEN")),
        "member_id": _text(form.get("member_id")),
    }
    _require(fields)
    if protocol not in ("0", "1"):
        raise HttpError(400, "bad_field", "PROTOCOL must be 0 or 1")
    scheme = "https" if protocol == "1" else "http"
    return InstallClaim(
        path="ui",
        member_id=fields["member_id"],
        domain=domain,
        client_endpoint=f"{scheme}://{domain}/rest/",
        server_endpoint=_text(form.get("SERVER_ENDPOINT")),
        access_token=fields["AUTH_ID"],
        refresh_token=fields["REFRESH_ID"],
        expires_in=_expires_in(_text(form.get("AUTH_EXPIRES"))),
        application_token=fields["APPLICATION_TOKEN"],
        scope=_text(form.get("APPLICATION_SCOPE")),
        language=_text(query.get("LANG") or form.get("LANG")),
        user_id="",
    )


def claim_from_event(form: dict[str, Any], path: str = "event") -> InstallClaim:
    """The ONAPPINSTALL callback (api-reference/common/events/on-app-install.md); ONAPPUPDATE has the
    same ``auth`` block with the NEW application_token (on-app-update.md)."""
    auth = form.get("auth")
    if not isinstance(auth, dict):
        raise HttpError(400, "missing_fields", "missing required fields: auth")
    data = form.get("data") if isinstance(form.get("data"), dict) else {}
    fields = {
        "auth[access_token]": _text(auth.get("access_token")),
        "auth[refresh_token]": _text(auth.get("refresh_token")),
        "auth[application_token]": _text(auth.get("application_token")),
        "auth[member_id]": _text(auth.get("member_id")),
        "auth[domain]": _text(auth.get("domain")),
        "auth[client_endpoint]": _text(auth.get("client_endpoint")),
    }
    _require(fields)
    return InstallClaim(
        path=path,
        member_id=fields["auth[member_id]"],
        domain=fields["auth[domain]"],
        client_endpoint=fields["auth[client_endpoint]"],
        server_endpoint=_text(auth.get("server_endpoint")),
        access_token=fields["auth[access_token]"],
        refresh_token=fields["auth[refresh_token]"],
        expires_in=_expires_in(_text(auth.get("expires_in"))),
        application_token=fields["auth[application_token]"],
        scope=_text(auth.get("scope")),
        language=_text((data or {}).get("LANGUAGE")),
        user_id=_text(auth.get("user_id")),
    )


def claim_from_request(query: dict[str, str], form: dict[str, Any]) -> InstallClaim:
    if _text(form.get("event")).upper() == "ONAPPINSTALL":
        return claim_from_event(form)
    if "event" in form:
        raise HttpError(400, "unexpected_event", "only ONAPPINSTALL is accepted at /install")
    return claim_from_frame(query, form)


def offered_pair(form: dict[str, Any]) -> tuple[str, str, str, int] | None:
    """(member_id, access_token, refresh_token, expires_in) when the event's auth carries a pair."""
    auth = form.get("auth")
    if not isinstance(auth, dict):
        return None
    member_id, access, refresh = auth.get("member_id"), auth.get("access_token"), auth.get("refresh_token")
    if not (isinstance(member_id, str) and isinstance(access, str) and isinstance(refresh, str)):
        return None
    if not (member_id and access and refresh):
        return None
    try:
        expires_in = int(str(auth.get("expires_in") or "3600"))
    except ValueError:
        expires_in = 3600
    return member_id, access, refresh, expires_in
