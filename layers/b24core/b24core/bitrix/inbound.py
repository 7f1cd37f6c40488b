"""Inbound Bitrix24 payloads (event posts, install frames, callbacks) parsed once into typed values.

Every form is parsed here (PHP bracket notation, within limits) and its ``auth`` block or frame fields
read into one typed claim, with a 400 for anything missing or malformed: nothing downstream reads a
raw form field of a token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from b24core.aws.apigw import FORM_TYPES, HttpError, Request
from b24core.bitrix.forms import FormError, FormLimits, parse_form
from b24core.bitrix.values import as_int


def read_form(req: Request, max_bytes: int) -> dict[str, Any]:
    """The request's form (Bitrix24 posts PHP-bracket forms); 415/400 for anything else."""
    if req.content_type not in FORM_TYPES:
        raise HttpError(415, "unsupported_media_type", "expected application/x-www-form-urlencoded")
    try:
        return parse_form(req.body, FormLimits(max_bytes=max_bytes))
    except FormError as exc:
        raise HttpError(400, "bad_form", str(exc)) from None


@dataclass(frozen=True)
class OfferedPair:
    """A token pair an event hands over (ONOFFLINEEVENT does), for the keeper to consider."""

    member_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int


_AUTH_TEXT = (
    "member_id",
    "domain",
    "application_token",
    "access_token",
    "refresh_token",
    "client_endpoint",
    "server_endpoint",
    "user_id",
    "status",
    "scope",
)


@dataclass(frozen=True)
class EventAuth:
    """An event's ``auth`` block, read once (api-reference/events/safe-event-handlers.md).

    Text is kept as posted (the intake looks a portal up by exactly what was sent), anything that is
    not text reads as "" so no caller meets a nested dict where it expects a value. ``expires_in`` is a
    strict integer (b24core.bitrix.values) or None when unsaid; ``malformed`` names what was sent as
    text that is no plain value of its kind, so a caller that needs it (the install claim) answers 400
    while the intake, which does not, lets the event through.
    """

    member_id: str
    domain: str
    application_token: str = field(repr=False)
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int | None
    client_endpoint: str
    server_endpoint: str
    user_id: str
    status: str
    scope: str
    malformed: frozenset[str] = frozenset()

    @classmethod
    def of(cls, form: dict[str, Any]) -> EventAuth | None:
        """The form's ``auth`` block, or None when the form has none."""
        auth = form.get("auth")
        if not isinstance(auth, dict):
            return None
        text = {name: _raw(auth.get(name)) for name in _AUTH_TEXT}
        expiry = _text(auth.get("expires_in"))
        expires_in = as_int(expiry) if expiry else None
        malformed = frozenset({"expires_in"} if expiry and expires_in is None else ())
        return cls(**text, expires_in=expires_in, malformed=malformed)

    def offered_pair(self) -> OfferedPair | None:
        """The pair this block carries, when it carries a whole one (an hour when the expiry is unsaid)."""
        if not (self.member_id and self.access_token and self.refresh_token):
            return None
        expires_in = 3600 if self.expires_in is None else self.expires_in
        return OfferedPair(self.member_id, self.access_token, self.refresh_token, expires_in)


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


def _raw(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _require(fields: dict[str, str]) -> None:
    missing = sorted(name for name, value in fields.items() if not value)
    if missing:
        raise HttpError(400, "missing_fields", f"missing required fields: {', '.join(missing)}")


def _lifetime(expires_in: int | None) -> int:
    """Seconds the access token lives: an hour when unsaid, never negative nor beyond a day."""
    return max(0, min(3600 if expires_in is None else expires_in, 24 * 3600))


def _bad_expiry() -> HttpError:
    return HttpError(400, "bad_field", "expires_in / AUTH_EXPIRES is not a number")


def _frame_expiry(raw: str) -> int | None:
    value = as_int(raw) if raw else None
    if raw and value is None:
        raise _bad_expiry()
    return value


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
        expires_in=_lifetime(_frame_expiry(_text(form.get("AUTH_EXPIRES")))),
        application_token=fields["APPLICATION_TOKEN"],
        scope=_text(form.get("APPLICATION_SCOPE")),
        language=_text(query.get("LANG") or form.get("LANG")),
        user_id="",
    )


def claim_from_event(form: dict[str, Any], path: str = "event") -> InstallClaim:
    """The ONAPPINSTALL callback (api-reference/common/events/on-app-install.md); ONAPPUPDATE has the
    same ``auth`` block with the NEW application_token (on-app-update.md)."""
    auth = EventAuth.of(form)
    if auth is None:
        raise HttpError(400, "missing_fields", "missing required fields: auth")
    data = form.get("data") if isinstance(form.get("data"), dict) else {}
    fields = {
        "auth[access_token]": auth.access_token.strip(),
        "auth[refresh_token]": auth.refresh_token.strip(),
        "auth[application_token]": auth.application_token.strip(),
        "auth[member_id]": auth.member_id.strip(),
        "auth[domain]": auth.domain.strip(),
        "auth[client_endpoint]": auth.client_endpoint.strip(),
    }
    _require(fields)
    if "expires_in" in auth.malformed:
        raise _bad_expiry()
    return InstallClaim(
        path=path,
        member_id=fields["auth[member_id]"],
        domain=fields["auth[domain]"],
        client_endpoint=fields["auth[client_endpoint]"],
        server_endpoint=auth.server_endpoint.strip(),
        access_token=fields["auth[access_token]"],
        refresh_token=fields["auth[refresh_token]"],
        expires_in=_lifetime(auth.expires_in),
        application_token=fields["auth[application_token]"],
        scope=auth.scope.strip(),
        language=_text((data or {}).get("LANGUAGE")),
        user_id=auth.user_id.strip(),
    )


def claim_from_request(query: dict[str, str], form: dict[str, Any]) -> InstallClaim:
    if _text(form.get("event")).upper() == "ONAPPINSTALL":
        return claim_from_event(form)
    if "event" in form:
        raise HttpError(400, "unexpected_event", "only ONAPPINSTALL is accepted at /install")
    return claim_from_frame(query, form)
