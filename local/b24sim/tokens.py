"""OAuth tokens issued by the simulated authorization server.

Token values are secrets: they are excluded from ``repr`` so they never reach a log line or an assertion
message by accident. Tokens are tied to the portal's ``member_id`` (which survives a domain change), not to
its domain.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

from b24sim.clock import Clock

ACCESS_TTL_S = 3600
REFRESH_TTL_S = 180 * 24 * 3600
CODE_TTL_S = 30


#: Every secret value this process handed out, so tests can prove none of them leaked into logs.
ISSUED: set[str] = set()


def new_secret() -> str:
    """A token-like random value (32 lowercase hex characters, like the docs' examples)."""
    value = secrets.token_hex(16)
    ISSUED.add(value)
    return value


@dataclass
class AccessToken:
    value: str = field(repr=False)
    member_id: str
    user_id: int
    scope: tuple[str, ...]
    expires_at: float
    revoked: bool = False
    #: Authorization by an incoming webhook's code (no application context).
    webhook: bool = False


@dataclass
class RefreshToken:
    value: str = field(repr=False)
    member_id: str
    user_id: int
    scope: tuple[str, ...]
    expires_at: float
    used: bool = False
    revoked: bool = False


@dataclass
class AuthCode:
    value: str = field(repr=False)
    member_id: str
    user_id: int
    expires_at: float
    used: bool = False


class TokenStore:
    """All tokens of the one simulated application, across portals."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._codes: dict[str, AuthCode] = {}

    def issue_access(self, member_id: str, user_id: int, scope: tuple[str, ...]) -> AccessToken:
        token = AccessToken(new_secret(), member_id, user_id, scope, self._clock.now() + ACCESS_TTL_S)
        with self._lock:
            self._access[token.value] = token
        return token

    def issue_pair(
        self, member_id: str, user_id: int, scope: tuple[str, ...]
    ) -> tuple[AccessToken, RefreshToken]:
        access = self.issue_access(member_id, user_id, scope)
        refresh = RefreshToken(new_secret(), member_id, user_id, scope, self._clock.now() + REFRESH_TTL_S)
        with self._lock:
            self._refresh[refresh.value] = refresh
        return access, refresh

    def issue_code(self, member_id: str, user_id: int) -> AuthCode:
        code = AuthCode(new_secret(), member_id, user_id, self._clock.now() + CODE_TTL_S)
        with self._lock:
            self._codes[code.value] = code
        return code

    def access(self, value: str) -> AccessToken | None:
        with self._lock:
            return self._access.get(value)

    def refresh(self, value: str) -> RefreshToken | None:
        with self._lock:
            return self._refresh.get(value)

    def code(self, value: str) -> AuthCode | None:
        with self._lock:
            return self._codes.get(value)

    def is_expired(self, token: AccessToken | RefreshToken | AuthCode) -> bool:
        return self._clock.now() >= token.expires_at

    def revoke_member(self, member_id: str) -> None:
        """Uninstall: every token of the app on that portal stops working."""
        with self._lock:
            for token in self._access.values():
                if token.member_id == member_id:
                    token.revoked = True
            for refresh in self._refresh.values():
                if refresh.member_id == member_id:
                    refresh.revoked = True

    def expire_access(self, member_id: str | None = None) -> int:
        """Make live access tokens (of one portal, or all) expired now; returns how many."""
        now = self._clock.now()
        count = 0
        with self._lock:
            for token in self._access.values():
                if (member_id is None or token.member_id == member_id) and token.expires_at > now:
                    token.expires_at = now - 1
                    count += 1
        return count
