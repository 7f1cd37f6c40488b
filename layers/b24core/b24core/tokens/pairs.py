"""Steps of token custody: a portal with a new pair, a versioned change of token state, whose pair a
token is, why a refresh failed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from b24core.bitrix.errors import B24Error, InvalidClient
from b24core.bitrix.oauth import AppInfo
from b24core.portals.announce import announce_token_state
from b24core.portals.model import Portal
from b24core.portals.states import PortalState, TokenState
from b24core.portals.store import PortalStore
from b24core.portals.versioned import StaleWrite
from b24core.tokens.outcomes import SAVE_ATTEMPTS, Outcome, RefreshResult


def failure_reason(exc: B24Error) -> str:
    """The metric/log label of a failed refresh."""
    if isinstance(exc, InvalidClient):
        return "invalid_client"
    return {
        "TRANSPORT_ERROR": "auth_server_unreachable",
        "BAD_RESPONSE": "auth_server_bad_answer",
    }.get(exc.code, exc.code.lower() if exc.code else "error")


def with_pair(base: Portal, access: str, refresh: str, expires_at: int, now: int, reason: str) -> Portal:
    updated = base.with_token_state(TokenState.ACTIVE) if base.token_state != TokenState.ACTIVE else base
    return replace(
        updated,
        access_token=access,
        refresh_token=refresh,
        access_expires_at=expires_at,
        refreshed_at=now,
        updated_at=now,
        refresh_attempts=0,
        next_attempt_at=0,
        token_state_reason=reason if updated.token_state != base.token_state else base.token_state_reason,
        token_state_at=now if updated.token_state != base.token_state else base.token_state_at,
    )


def foreign(info: AppInfo, client_id: str, member_id: str) -> str:
    """Why a token the auth server vouched for is not this portal's pair of our app ("" if it is)."""
    if info.client_id != client_id:
        return "token of another app"
    if info.install.member_id != member_id:
        return "token of another portal"
    if not info.install.installed:
        return "app not installed on the portal"
    return ""


def transition(
    store: PortalStore,
    clock: Callable[[], float],
    portal: Portal,
    target: TokenState,
    reason: str,
    next_attempt_at: int = 0,
    attempts: int | None = None,
) -> RefreshResult | None:
    """Move the portal to ``target`` (version-checked); a newer pair found meanwhile wins."""
    outcome = {
        TokenState.REAUTH_REQUIRED: Outcome.REAUTH_REQUIRED,
        TokenState.PAYMENT_REQUIRED: Outcome.PAYMENT_REQUIRED,
        TokenState.REFRESH_FAILING: Outcome.FAILING,
    }.get(target, Outcome.FAILING)
    base: Portal | None = portal
    for _ in range(SAVE_ATTEMPTS):
        if base is None or base.state != PortalState.ACTIVE:
            return RefreshResult(Outcome.NOT_INSTALLED, base)
        if base.refresh_token != portal.refresh_token:
            return RefreshResult(Outcome.PEER_REFRESHED, base)
        now = int(clock())
        changed = base.token_state != target
        updated = base.with_token_state(target) if changed else base
        updated = replace(
            updated,
            token_state_reason=reason,
            token_state_at=now if changed else (base.token_state_at or now),
            next_attempt_at=next_attempt_at,
            refresh_attempts=attempts if attempts is not None else base.refresh_attempts + 1,
        )
        try:
            saved = store.save(updated)
        except StaleWrite:
            base = store.get(portal.member_id)
            continue
        announce_token_state(base, saved)
        return RefreshResult(outcome, saved, reason, retry_at=next_attempt_at or None)
    return None
