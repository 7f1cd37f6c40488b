"""User sessions for the app's own pages and API calls.

Any user who opens the app (main page or a placement) brings a frame POST with their own genuine
token. The install function checks it at the authorization server (this app, this portal) and asks
the portal whether the user is an administrator, then hands the page a short-lived signed session
instead of the token: pages and API calls prove who they are with it, and nothing about it can change
what the app trusts (stored tokens, application_token, webhooks) — those need an administrator's
verified token in a request of their own.

Format: ``base64url(json claims) "." base64url(HMAC-SHA256)``; the key is derived from the
client_secret, so rotating the secret ends every session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

_CONTEXT = b"b24core user session v1"
MAX_TOKEN_BYTES = 4096
MAX_OPTIONS_BYTES = 1024


class SessionInvalid(ValueError):
    """Not a session this app issued, or expired."""


@dataclass(frozen=True)
class UserSession:
    member_id: str
    domain: str
    user_id: str
    admin: bool
    placement: str
    placement_options: str
    expires_at: int
    language: str = ""


def session_key(client_secret: str) -> bytes:
    return hmac.new(client_secret.encode(), _CONTEXT, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(
    key: bytes,
    *,
    member_id: str,
    domain: str,
    user_id: str,
    admin: bool,
    placement: str,
    placement_options: str,
    ttl_s: int,
    language: str = "",
    now: float | None = None,
) -> tuple[str, UserSession]:
    session = UserSession(
        member_id=member_id,
        domain=domain,
        user_id=user_id,
        admin=admin,
        placement=placement[:64],
        placement_options=placement_options[:MAX_OPTIONS_BYTES],
        expires_at=int(now if now is not None else time.time()) + ttl_s,
        language=language[:8],
    )
    body = _b64(json.dumps(asdict(session), separators=(",", ":"), sort_keys=True).encode())
    signature = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    return f"{body}.{signature}", session


def verify(key: bytes, token: str, now: float | None = None) -> UserSession:
    if not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 1:
        raise SessionInvalid("not a session")
    body, signature = token.split(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SessionInvalid("bad signature")
    try:
        claims: Any = json.loads(_unb64(body))
        session = UserSession(**claims)
    except (ValueError, TypeError):
        raise SessionInvalid("malformed session") from None
    if session.expires_at <= int(now if now is not None else time.time()):
        raise SessionInvalid("session expired")
    return session
