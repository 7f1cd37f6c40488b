"""The authorization server (oauth.bitrix.info): the only place tokens are checked and refreshed.

A box portal is the customer's own server, so the app never sends its client_secret there and never
trusts what a portal or a request says about a token without asking this server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from b24core.aws.logs import remember_secret
from b24core.bitrix.errors import B24Error, BadResponse, error_from_payload
from b24core.bitrix.http import fetch, http_client
from b24core.bitrix.values import is_digits


@dataclass(frozen=True)
class InstallInfo:
    """What the authorization server knows about the app's installation on a portal."""

    installed: bool
    member_id: str
    domain: str
    client_endpoint: str
    status: str
    scope: str
    version: str
    member_type: str
    uri: str


@dataclass(frozen=True)
class AppInfo:
    """The server-side answer to ``/rest/app.info?auth=TOKEN``."""

    client_id: str
    scope: str
    expires: int | None
    user_id: str | None
    install: InstallInfo

    @classmethod
    def from_result(cls, result: dict[str, Any]) -> AppInfo:
        inst = result.get("install")
        if not isinstance(inst, dict):
            raise BadResponse("app.info answer has no install section")
        expires = result.get("expires")
        return cls(
            client_id=str(result.get("client_id") or ""),
            scope=str(result.get("scope") or ""),
            expires=int(str(expires)) if is_digits(expires) else None,
            user_id=str(result["user_id"]) if result.get("user_id") is not None else None,
            install=InstallInfo(
                installed=bool(inst.get("installed")),
                member_id=str(inst.get("member_id") or ""),
                domain=str(inst.get("domain") or ""),
                client_endpoint=str(inst.get("client_endpoint") or ""),
                status=str(inst.get("status") or ""),
                scope=str(inst.get("scope") or ""),
                version=str(inst.get("version") or ""),
                member_type=str(inst.get("member_type") or ""),
                uri=str(inst.get("uri") or ""),
            ),
        )


@dataclass(frozen=True)
class TokenPair:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires: int
    member_id: str
    client_endpoint: str
    server_endpoint: str
    scope: str
    status: str
    user_id: str | None


class AuthServer:
    """Client of the authorization server at ``base_url`` (B24_OAUTH_URL)."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        resp = fetch(
            http_client(self.timeout_s, guarded=False),
            "GET",
            f"{self.base_url}{path}",
            params=params,
            timeout_s=self.timeout_s,
            what="authorization server",
            max_bytes=1024 * 1024,
        )
        try:
            payload = json.loads(resp.content)
        except ValueError:
            raise BadResponse(
                f"authorization server answered HTTP {resp.status_code} without JSON", status=resp.status_code
            ) from None
        if not isinstance(payload, dict):
            raise BadResponse("authorization server answered with a non-object", status=resp.status_code)
        if "error" in payload:
            raise error_from_payload(payload, resp.status_code)
        if resp.status_code >= 400:
            raise B24Error(f"HTTP {resp.status_code}", status=resp.status_code)
        return payload

    def app_info(self, access_token: str) -> AppInfo:
        """Check a token without trusting the portal: who issued it, for which app and portal.

        The token is not remembered for redaction here: it may come from an unverified request, and
        the caller remembers it once the answer proved it belongs to this app and portal."""
        payload = self._get("/rest/app.info", {"auth": access_token})
        result = payload.get("result")
        if not isinstance(result, dict):
            raise BadResponse("app.info answer has no result")
        return AppInfo.from_result(result)

    def refresh(self, client_id: str, client_secret: str, refresh_token: str) -> TokenPair:
        """Exchange a (single-use) refresh token for a new pair."""
        remember_secret(refresh_token)
        remember_secret(client_secret)
        payload = self._get(
            "/oauth/token/",
            {
                "grant_type": "refresh_token",
                "client_id": client_id,
                "client_secret": client_secret,
                "refresh_token": refresh_token,
            },
        )
        try:
            pair = TokenPair(
                access_token=str(payload["access_token"]),
                refresh_token=str(payload["refresh_token"]),
                expires=int(str(payload["expires"])) if is_digits(payload.get("expires")) else 0,
                member_id=str(payload.get("member_id") or ""),
                client_endpoint=str(payload.get("client_endpoint") or ""),
                server_endpoint=str(payload.get("server_endpoint") or ""),
                scope=str(payload.get("scope") or ""),
                status=str(payload.get("status") or ""),
                user_id=str(payload["user_id"]) if payload.get("user_id") is not None else None,
            )
        except KeyError:
            raise BadResponse("token answer lacks a token") from None
        remember_secret(pair.access_token)
        remember_secret(pair.refresh_token)
        return pair
