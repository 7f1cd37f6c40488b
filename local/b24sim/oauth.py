"""The authorization server (the part oauth.bitrix.info plays): token refresh and server-side app.info.

Facts from settings/oauth/*.md: refresh tokens live 180 days and are replaced by every refresh (single
use here); errors are ``invalid_request``, ``invalid_client``, ``invalid_grant``, ``PAYMENT_REQUIRED``; the
response ``domain`` is the authorization server's own host. The docs give no HTTP statuses for these errors;
the simulator follows RFC 6749 (400, and 401 for ``invalid_client``).

Knobs for tests: ``latency_s`` (sleep per request), ``down`` (503 with a non-JSON page) and ``requests`` (a
record of every call, to assert that an app does not refresh too often).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from b24sim.rest import time_object
from b24sim.tokens import ACCESS_TTL_S

if TYPE_CHECKING:
    from b24sim.portal import Portal
    from b24sim.simulator import Simulator
    from b24sim.tokens import AccessToken, AuthCode, RefreshToken

log = logging.getLogger("b24sim.oauth")

DOWN_PAGE = (
    "<html><head><title>503 Service Temporarily Unavailable</title></head><body>Unavailable</body></html>"
)

Reply = tuple[int, Any]  # (HTTP status, JSON-able body or a str page)


@dataclass(frozen=True)
class OAuthRequest:
    """One request to the authorization server (no secrets)."""

    kind: str  # "token" | "app.info"
    grant_type: str | None
    member_id: str | None
    outcome: str  # "ok", an error code, or "down"
    at: float


def _error(status: int, code: str, description: str) -> Reply:
    return status, {"error": code, "error_description": description}


class AuthServer:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.latency_s = 0.0
        self.down = False
        self.requests: list[OAuthRequest] = []

    def _log(self, kind: str, grant: str | None, member_id: str | None, reply: Reply) -> Reply:
        status, body = reply
        outcome = "down" if isinstance(body, str) else ("ok" if status == 200 else str(body.get("error")))
        with self.sim.lock:
            self.requests.append(OAuthRequest(kind, grant, member_id, outcome, self.sim.clock.now()))
        log.info("auth server %s (%s) -> %s", kind, grant or "-", outcome)
        return reply

    # -- /oauth/token/ ---------------------------------------------------------------------------------
    def token(self, params: dict[str, Any]) -> Reply:
        if self.latency_s > 0:
            time.sleep(self.latency_s)
        grant = str(params.get("grant_type") or "")
        if self.down:
            return self._log("token", grant or None, None, (503, DOWN_PAGE))
        member_id, reply = self._token(grant, params)
        return self._log("token", grant or None, member_id, reply)

    def _token(self, grant: str, params: dict[str, Any]) -> tuple[str | None, Reply]:
        sim = self.sim
        if grant not in ("refresh_token", "authorization_code"):
            return None, _error(400, "invalid_request", "Unsupported or missing grant_type")
        if not sim.check_client(str(params.get("client_id") or ""), str(params.get("client_secret") or "")):
            return None, _error(401, "invalid_client", "Invalid client credentials")
        with sim.lock:
            grant_obj: RefreshToken | AuthCode | None
            if grant == "refresh_token":
                grant_obj = sim.tokens.refresh(str(params.get("refresh_token") or ""))
                dead = grant_obj is None or grant_obj.used or grant_obj.revoked
            else:
                grant_obj = sim.tokens.code(str(params.get("code") or ""))
                dead = grant_obj is None or grant_obj.used
            if grant_obj is None or sim.tokens.is_expired(grant_obj):
                member = grant_obj.member_id if grant_obj else None
                return member, _error(400, "invalid_grant", f"Invalid {grant.replace('_', ' ')}")
            member_id, user_id = grant_obj.member_id, grant_obj.user_id
            portal = sim.portal_by_member(member_id)
            if portal is None or portal.app is None:
                # settings/oauth/error-codes.md: invalid_client, "the application may not be installed"
                # (the uninstall also revoked the token; the missing app is what the server reports).
                return member_id, _error(401, "invalid_client", "Application is not installed")
            if dead:
                return member_id, _error(400, "invalid_grant", f"Invalid {grant.replace('_', ' ')}")
            if portal.payment_required:
                return member_id, _error(400, "PAYMENT_REQUIRED", "Payment required")
            # A refresh token (or code) works once: the new pair replaces it.
            grant_obj.used = True
            access, new_refresh = sim.tokens.issue_pair(member_id, user_id, portal.app.scope)
            return member_id, (200, token_response(sim, portal, access, new_refresh))

    # -- /rest/app.info --------------------------------------------------------------------------------
    def app_info(self, params: dict[str, Any], bearer: str | None) -> Reply:
        if self.latency_s > 0:
            time.sleep(self.latency_s)
        if self.down:
            return self._log("app.info", None, None, (503, DOWN_PAGE))
        sim = self.sim
        started = sim.clock.now()
        raw = params.get("auth") or bearer
        with sim.lock:
            token = sim.tokens.access(raw) if isinstance(raw, str) and raw else None
            portal = sim.portal_by_member(token.member_id) if token else None
            if token is None or token.revoked or portal is None or portal.app is None:
                return self._log(
                    "app.info",
                    None,
                    None,
                    _error(401, "invalid_token", "The access token provided is invalid."),
                )
            if sim.tokens.is_expired(token):
                return self._log(
                    "app.info",
                    None,
                    token.member_id,
                    _error(401, "expired_token", "The access token provided has expired."),
                )
            app = portal.app
            granted = ",".join(portal.granted_scopes(token.scope))
            result = {
                "client_id": sim.client_id,
                "scope": granted,
                "expires": datetime.fromtimestamp(token.expires_at, tz=UTC).isoformat(timespec="seconds"),
                "user_id": token.user_id,
                "install": {
                    "installed": app.installed,
                    "version": app.version,
                    "status": app.status,
                    "scope": granted,
                    "domain": portal.domain,
                    "uri": portal.base_url,
                    "client_endpoint": portal.client_endpoint,
                    "member_id": portal.member_id,
                    "member_type": "PORTAL",
                },
            }
            body = {"result": result, "time": time_object(started, sim.clock.now(), 0.0)}
        return self._log("app.info", None, token.member_id, (200, body))


def token_response(
    sim: Simulator, portal: Portal, access: AccessToken, refresh: RefreshToken
) -> dict[str, Any]:
    """The documented token JSON, in the documented key order."""
    return {
        "access_token": access.value,
        "client_endpoint": portal.client_endpoint,
        "domain": sim.auth_host,
        "expires": int(access.expires_at),
        "expires_in": ACCESS_TTL_S,
        "member_id": portal.member_id,
        "refresh_token": refresh.value,
        "scope": ",".join(portal.granted_scopes(access.scope)),
        "server_endpoint": sim.server_endpoint,
        "status": portal.app.status if portal.app else "L",
        "user_id": access.user_id,
    }
