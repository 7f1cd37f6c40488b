"""What a refresh can end in, and the errors a portal that cannot be used raises."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from b24core.aws.logs import remember_secret
from b24core.bitrix.errors import B24Error
from b24core.bitrix.oauth import AppInfo, TokenPair
from b24core.portals.model import Portal

# Backoff while refreshes fail for transient reasons: 30 s, 1 min, 2 min ... at most an hour.
RETRY_BASE_S = 30
RETRY_MAX_S = 3600
#: Optimistic saves of one portal before giving up (each re-reads what a peer wrote).
SAVE_ATTEMPTS = 8


class PortalUnavailable(RuntimeError):
    """The portal cannot be called now (uninstalled, re-authorization or payment needed)."""


class PortalNotInstalled(PortalUnavailable):
    pass


class ReauthRequired(PortalUnavailable):
    """The refresh token is dead: the portal's admin must open the app again."""


class SubscriptionExpired(PortalUnavailable):
    """The authorization server refuses tokens until the app is paid for (PAYMENT_REQUIRED)."""


class RefreshUnavailable(B24Error):
    """A refresh cannot be done right now (auth server failing, a peer's refresh taking too long).

    Retryable: the portal is not lost; an event handler that raises it gets its message redelivered.
    """

    code = "REFRESH_UNAVAILABLE"
    retryable = True

    def __init__(self, description: str = "", *, retry_at: int | None = None) -> None:
        super().__init__(description)
        self.retry_at = retry_at


class Installation(StrEnum):
    PRESENT = "present"
    GONE = "gone"
    UNKNOWN = "unknown"


class RefreshReason(StrEnum):
    EXPIRED = "expired"  # a call answered expired_token
    KEEPALIVE = "keepalive"  # the refresh token is getting old (sweep)
    RETRY = "retry"  # a failing or payment-required portal's scheduled attempt (sweep)
    MANUAL = "manual"  # an operator (b24app tokens refresh)


class Outcome(StrEnum):
    REFRESHED = "refreshed"
    PEER_REFRESHED = "peer_refreshed"  # somebody else stored a newer pair; use it
    NOT_DUE = "not_due"  # nothing to do (fresh enough, or not this portal's turn)
    TOO_SOON = "too_soon"  # refused: refreshed within the minimum interval
    BUSY = "busy"  # a peer holds the refresh lease past our wait
    FAILING = "failing"  # transient failure; retried later
    REAUTH_REQUIRED = "reauth_required"
    PAYMENT_REQUIRED = "payment_required"
    NOT_INSTALLED = "not_installed"
    ADOPTED = "adopted"  # a verified fresh pair from Bitrix24 replaced the stored one
    REJECTED = "rejected"  # an offered pair did not pass the check at the auth server


@dataclass(frozen=True)
class RefreshResult:
    outcome: Outcome
    portal: Portal | None
    detail: str = ""
    retry_at: int | None = None

    def summary(self) -> dict[str, Any]:
        """What an operator may see (never a token)."""
        p = self.portal
        return {
            "member_id": p.member_id if p else "",
            "outcome": str(self.outcome),
            "detail": self.detail,
            "token_state": str(p.token_state) if p else "",
            "refreshed_at": p.refreshed_at if p else 0,
            "next_attempt_at": p.next_attempt_at if p else 0,
        }


class AuthServerClient(Protocol):
    def refresh(self, client_id: str, client_secret: str, refresh_token: str) -> TokenPair: ...

    def app_info(self, access_token: str) -> AppInfo: ...


class SecretSource(Protocol):
    """The client_secret; ``force=True`` bypasses any cache (after ``invalid_client``)."""

    def __call__(self, force: bool = False) -> str: ...


class StaticSecret:
    """A fixed secret (tests, tools that got it elsewhere)."""

    def __init__(self, value: str) -> None:
        remember_secret(value)
        self._value = value

    def __call__(self, force: bool = False) -> str:
        return self._value

    def __repr__(self) -> str:
        return "StaticSecret(***)"
