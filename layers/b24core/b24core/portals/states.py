"""Portal and token states with their allowed transitions in one place.

Lifecycle (as the PHP SDK's Bitrix24Account): new → active ↔ blocked → deleted, and a verified
reinstall brings a deleted portal back to active. Token custody has its own axis, because a portal
can be installed yet unreachable (its refresh token died, or its subscription lapsed).
"""

from __future__ import annotations

from enum import StrEnum


class IllegalTransition(RuntimeError):
    """A state change the lifecycle does not allow (a bug, never a client error)."""


class PortalState(StrEnum):
    NEW = "new"
    ACTIVE = "active"
    BLOCKED = "blocked"
    DELETED = "deleted"


class TokenState(StrEnum):
    ACTIVE = "active"
    REFRESH_FAILING = "refresh_failing"
    REAUTH_REQUIRED = "reauth_required"
    PAYMENT_REQUIRED = "payment_required"
    UNINSTALLED = "uninstalled"


PORTAL_TRANSITIONS: dict[PortalState, frozenset[PortalState]] = {
    PortalState.NEW: frozenset({PortalState.ACTIVE, PortalState.DELETED}),
    PortalState.ACTIVE: frozenset({PortalState.ACTIVE, PortalState.BLOCKED, PortalState.DELETED}),
    PortalState.BLOCKED: frozenset({PortalState.ACTIVE, PortalState.DELETED}),
    PortalState.DELETED: frozenset({PortalState.ACTIVE}),
}

TOKEN_TRANSITIONS: dict[TokenState, frozenset[TokenState]] = {
    TokenState.ACTIVE: frozenset(
        {
            TokenState.ACTIVE,
            TokenState.REFRESH_FAILING,
            TokenState.REAUTH_REQUIRED,
            TokenState.PAYMENT_REQUIRED,
            TokenState.UNINSTALLED,
        }
    ),
    TokenState.REFRESH_FAILING: frozenset(
        {
            TokenState.ACTIVE,
            TokenState.REFRESH_FAILING,
            TokenState.REAUTH_REQUIRED,
            TokenState.PAYMENT_REQUIRED,
            TokenState.UNINSTALLED,
        }
    ),
    TokenState.REAUTH_REQUIRED: frozenset({TokenState.ACTIVE, TokenState.UNINSTALLED}),
    # A payment-required portal is probed daily; its refresh token may have died meanwhile.
    TokenState.PAYMENT_REQUIRED: frozenset(
        {TokenState.ACTIVE, TokenState.PAYMENT_REQUIRED, TokenState.REAUTH_REQUIRED, TokenState.UNINSTALLED}
    ),
    TokenState.UNINSTALLED: frozenset({TokenState.ACTIVE}),
}


def check_portal_transition(current: PortalState, target: PortalState) -> None:
    if target not in PORTAL_TRANSITIONS[current]:
        raise IllegalTransition(f"portal state {current} -> {target} is not allowed")


def check_token_transition(current: TokenState, target: TokenState) -> None:
    if target not in TOKEN_TRANSITIONS[current]:
        raise IllegalTransition(f"token state {current} -> {target} is not allowed")
