"""The portal record as a plain value; storage details live in the store."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from b24core.portals.states import (
    PortalState,
    TokenState,
    check_portal_transition,
    check_token_transition,
)

# Keep-alive: a refresh token lives 180 days; refresh well inside that (issue: token custody).
REFRESH_KEEPALIVE_S = 30 * 24 * 3600


@dataclass(frozen=True)
class Portal:
    member_id: str
    domain: str
    client_endpoint: str
    server_endpoint: str = ""
    state: PortalState = PortalState.NEW
    token_state: TokenState = TokenState.ACTIVE
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    access_expires_at: int = 0
    application_token: str = field(default="", repr=False)
    #: An outgoing webhook's application token (b24core.trust.webhooks): its events are verified with it.
    webhook_token: str = field(default="", repr=False)
    scope: str = ""
    status: str = ""
    #: Whose pair is stored: the app's background calls run as this user, who must be an administrator.
    user_id: str = ""
    user_admin: bool = False
    language: str = ""
    app_version: str = ""
    installed_at: int = 0
    updated_at: int = 0
    refreshed_at: int = 0
    install_path: str = ""
    capabilities: dict[str, Any] = field(default_factory=dict)
    # Token custody (b24core.tokens.keeper): why and when the token state last changed, and the retry
    # schedule while refreshes fail (refresh_failing) or the subscription lapsed (payment_required).
    token_state_reason: str = ""
    token_state_at: int = 0
    refresh_attempts: int = 0
    next_attempt_at: int = 0
    version: int = 0
    #: Why a newer release wrote this record (b24core.portals.schema), or "": such a portal is read with
    #: conservative stand-ins, skipped by work that would act on it, and never saved by this release.
    newer_release: str = ""

    # ---- transitions (each checks the lifecycle)
    def with_state(self, target: PortalState) -> Portal:
        check_portal_transition(self.state, target)
        return replace(self, state=target, updated_at=int(time.time()))

    def with_token_state(self, target: TokenState) -> Portal:
        check_token_transition(self.token_state, target)
        return replace(self, token_state=target, updated_at=int(time.time()))

    @property
    def refresh_due_at(self) -> int:
        return (self.refreshed_at or self.installed_at) + REFRESH_KEEPALIVE_S

    def public_view(self) -> dict[str, Any]:
        """Everything an operator may see: never a token value."""
        return {
            "member_id": self.member_id,
            "domain": self.domain,
            "client_endpoint": self.client_endpoint,
            "server_endpoint": self.server_endpoint,
            "state": str(self.state),
            "token_state": str(self.token_state),
            "access_expires_at": self.access_expires_at,
            "has_refresh_token": bool(self.refresh_token),
            "scope": self.scope,
            "status": self.status,
            "language": self.language,
            "token_user": {"user_id": self.user_id, "admin": self.user_admin},
            "app_version": self.app_version,
            "install_path": self.install_path,
            "installed_at": self.installed_at,
            "updated_at": self.updated_at,
            "refreshed_at": self.refreshed_at,
            "refresh_due_at": self.refresh_due_at,
            "token_state_reason": self.token_state_reason,
            "token_state_at": self.token_state_at,
            "refresh_attempts": self.refresh_attempts,
            "next_attempt_at": self.next_attempt_at,
            "capabilities": self.capabilities,
            **({"newer_release": self.newer_release} if self.newer_release else {}),
        }
