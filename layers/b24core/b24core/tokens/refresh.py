"""Refreshing a portal's tokens at the authorization server, once per refresh token, under a lease.

See b24core.tokens.keeper for the whole of token custody and the token states."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from logging import ERROR, WARNING

from b24core.aws import metrics
from b24core.aws.logs import log_event, logger
from b24core.aws.settings import DAY_S, TokenPolicy
from b24core.bitrix.errors import (
    ApplicationNotInstalled,
    AuthError,
    B24Error,
    ExpiredToken,
    InvalidClient,
    InvalidGrant,
    PaymentRequired,
)
from b24core.bitrix.oauth import TokenPair
from b24core.portals import token_index
from b24core.portals.announce import announce_token_state
from b24core.portals.model import Portal
from b24core.portals.states import PortalState, TokenState
from b24core.portals.store import PortalStore
from b24core.portals.versioned import StaleWrite
from b24core.tokens.lease import LeaseKey, LeaseStore
from b24core.tokens.outcomes import (
    RETRY_BASE_S,
    RETRY_MAX_S,
    SAVE_ATTEMPTS,
    AuthServerClient,
    Installation,
    Outcome,
    PortalNotInstalled,
    ReauthRequired,
    RefreshReason,
    RefreshResult,
    RefreshUnavailable,
    SecretSource,
    SubscriptionExpired,
)
from b24core.tokens.pairs import failure_reason, transition, with_pair
from b24core.trust.admin import Caller, ask_portal
from b24core.trust.uninstall import UninstallSchedule, mark_uninstalled

Throttle = Callable[[], None]


@dataclass(eq=False)  # a service, compared by identity
class Refresher:
    """The refresh itself: single flight under a lease, and what each answer of the auth server does
    to the portal's token state. ``TokenKeeper`` adds taking over offered pairs and moves."""

    store: PortalStore
    auth_server: AuthServerClient
    client_id: str
    secret: SecretSource
    leases: LeaseStore
    policy: TokenPolicy = field(default_factory=TokenPolicy)
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    allow_insecure_endpoints: bool = False
    uninstall_schedule: UninstallSchedule | None = None
    admin_check: Callable[[str, str], Caller] = ask_portal

    def __post_init__(self) -> None:
        self._holder = f"{uuid.uuid4().hex[:12]}"
        self._seq = 0
        self._seq_lock = threading.Lock()

    # ------------------------------------------------------------------ public entry points
    def refresh(self, portal: Portal, reason: RefreshReason = RefreshReason.EXPIRED) -> Portal:
        """A usable portal after ``portal``'s access token expired, or a typed exception."""
        result = self.attempt(portal, reason)
        if result.outcome in (Outcome.REFRESHED, Outcome.PEER_REFRESHED, Outcome.NOT_DUE, Outcome.ADOPTED):
            assert result.portal is not None
            return result.portal
        if result.outcome == Outcome.REAUTH_REQUIRED:
            raise ReauthRequired("refresh token rejected: the portal's admin must open the app again")
        if result.outcome == Outcome.PAYMENT_REQUIRED:
            raise SubscriptionExpired("the app's subscription on this portal has expired")
        if result.outcome == Outcome.NOT_INSTALLED:
            raise PortalNotInstalled("the app is not installed on this portal")
        raise RefreshUnavailable(result.detail or str(result.outcome), retry_at=result.retry_at)

    def attempt(
        self, portal: Portal, reason: RefreshReason, throttle: Throttle | None = None
    ) -> RefreshResult:
        """Refresh ``portal`` once if it still needs it; never raises for the portal's own state."""
        key = LeaseKey.refresh(portal.member_id)
        holder = self._next_holder()
        deadline = self.clock() + self.policy.wait_s
        delay = 0.02
        first = True
        while True:
            # The sweep read the portal from the index a moment ago: skip the extra read once.
            latest = portal if first and reason in (RefreshReason.KEEPALIVE, RefreshReason.RETRY) else None
            latest = latest or self.store.get(portal.member_id)
            first = False
            done = self._settled(portal, latest, reason)
            if done is not None:
                return done
            assert latest is not None
            if self.leases.acquire(key, holder, self.policy.lease_s, self.clock()):
                try:
                    return self._refresh_locked(portal, reason, throttle)
                finally:
                    self._release(key, holder)
            if reason in (RefreshReason.KEEPALIVE, RefreshReason.RETRY):
                return RefreshResult(Outcome.BUSY, latest, "another process is refreshing this portal")
            if self.clock() >= deadline:
                metrics.emit("RefreshFailed", reason="lease_busy")
                return RefreshResult(Outcome.BUSY, latest, "another process is still refreshing this portal")
            self.sleep(min(delay, max(0.0, deadline - self.clock())))
            delay = min(delay * 2, 0.25)

    # ------------------------------------------------------------------ the refresh itself
    def _settled(self, seen: Portal, latest: Portal | None, reason: RefreshReason) -> RefreshResult | None:
        """The result when nothing (more) must be done for ``reason``; None when a refresh is needed."""
        now = int(self.clock())
        if latest is not None and latest.newer_release:
            # Its new pair could not be saved (NewerItem): a refresh here would burn the refresh token.
            return RefreshResult(Outcome.BUSY, latest, "record written by a newer release")
        if latest is None or latest.state != PortalState.ACTIVE:
            return RefreshResult(Outcome.NOT_INSTALLED, latest, "portal not installed")
        ts = latest.token_state
        if ts == TokenState.UNINSTALLED:
            return RefreshResult(Outcome.NOT_INSTALLED, latest, "portal not installed")
        if ts == TokenState.REAUTH_REQUIRED:
            return RefreshResult(Outcome.REAUTH_REQUIRED, latest, latest.token_state_reason)
        if not latest.refresh_token:
            return RefreshResult(Outcome.REAUTH_REQUIRED, latest, "no refresh token stored")
        if reason == RefreshReason.EXPIRED:
            if latest.access_token != seen.access_token:
                return RefreshResult(Outcome.PEER_REFRESHED, latest)
            if ts == TokenState.PAYMENT_REQUIRED:
                return RefreshResult(Outcome.PAYMENT_REQUIRED, latest, latest.token_state_reason)
            if ts == TokenState.REFRESH_FAILING and latest.next_attempt_at > now:
                return RefreshResult(
                    Outcome.FAILING,
                    latest,
                    "the authorization server is failing; next attempt scheduled",
                    retry_at=latest.next_attempt_at,
                )
            return None
        if reason == RefreshReason.RETRY:
            if ts not in (TokenState.REFRESH_FAILING, TokenState.PAYMENT_REQUIRED):
                return RefreshResult(Outcome.NOT_DUE, latest)
            if latest.next_attempt_at > now:
                return RefreshResult(Outcome.NOT_DUE, latest, retry_at=latest.next_attempt_at)
            return None
        if reason == RefreshReason.MANUAL and (
            latest.access_expires_at <= now or ts == TokenState.REFRESH_FAILING
        ):
            return None  # an operator's refresh of an expired or failing portal is what it needs now
        if now - latest.refreshed_at < self.policy.min_interval_s:
            outcome = Outcome.TOO_SOON if reason == RefreshReason.MANUAL else Outcome.NOT_DUE
            return RefreshResult(outcome, latest, "refreshed less than the minimum interval ago")
        if ts == TokenState.PAYMENT_REQUIRED and reason == RefreshReason.KEEPALIVE:
            return RefreshResult(Outcome.NOT_DUE, latest)
        if reason == RefreshReason.KEEPALIVE and not token_index.keepalive_due(
            latest, now, self.policy.keepalive_age_s
        ):
            return RefreshResult(Outcome.NOT_DUE, latest)
        return None

    def _refresh_locked(
        self, seen: Portal, reason: RefreshReason, throttle: Throttle | None
    ) -> RefreshResult:
        # Re-read under the lease: a peer may have finished just before we took it.
        latest = self.store.get(seen.member_id)
        done = self._settled(seen, latest, reason)
        if done is not None:
            return done
        assert latest is not None
        if throttle is not None:
            throttle()
        try:
            pair = self._exchange(latest.refresh_token)
        except InvalidGrant:
            return self._on_invalid_grant(latest)
        except PaymentRequired:
            return self._on_payment_required(latest)
        except (ApplicationNotInstalled, InvalidClient) as exc:
            # invalid_client survived a fresh secret: "the application may not be installed"
            # (settings/oauth/error-codes.md). Believed for this portal only once confirmed there.
            return self._on_not_installed(latest, exc)
        except B24Error as exc:
            return self._on_transient(latest, exc)
        return self._save_pair(latest, pair, reason)

    def _exchange(self, refresh_token: str) -> TokenPair:
        """One request to the authorization server; a rotated secret gets one fresh fetch."""
        try:
            return self.auth_server.refresh(self.client_id, self.secret(), refresh_token)
        except InvalidClient:
            # invalid_client is checked before the grant, so the refresh token was not spent.
            return self.auth_server.refresh(self.client_id, self.secret(force=True), refresh_token)

    def _save_pair(self, latest: Portal, pair: TokenPair, reason: RefreshReason) -> RefreshResult:
        """Store the new pair: it is the only valid one now, so it must not be lost to a write race."""
        now = int(self.clock())
        expires = pair.expires if pair.expires > 0 else now + 3600
        base: Portal | None = latest
        delay = 0.05
        for attempt in range(SAVE_ATTEMPTS):
            if base is None or base.state != PortalState.ACTIVE or base.token_state == TokenState.UNINSTALLED:
                self._log("refreshed pair discarded: portal uninstalled meanwhile", latest, "discarded")
                return RefreshResult(Outcome.NOT_INSTALLED, base)
            if base.refresh_token == pair.refresh_token:
                saved = base  # an earlier attempt did store it (its answer was lost)
                break
            updated = with_pair(base, pair.access_token, pair.refresh_token, expires, now, "refreshed")
            try:
                saved = self.store.save(updated)
                break
            except StaleWrite:
                base = self.store.get(latest.member_id)
            except Exception as exc:  # the table itself is failing: keep trying while we can
                if attempt == SAVE_ATTEMPTS - 1:
                    log_event(
                        ERROR,
                        "refreshed pair could not be saved",
                        "refresh",
                        latest.member_id,
                        "save_failed",
                        error=exc,
                    )
                    raise
                self.sleep(delay)
                delay = min(delay * 2, 1.0)
                base = self.store.get(latest.member_id)
        else:
            raise RefreshUnavailable("the portal kept changing while its new tokens were saved")
        announce_token_state(latest, saved)
        metrics.emit("TokensRefreshed", reason=str(reason))
        self._log("tokens refreshed", saved, "refreshed", trigger=str(reason))
        return RefreshResult(Outcome.REFRESHED, saved)

    def _on_invalid_grant(self, latest: Portal) -> RefreshResult:
        """Believe ``invalid_grant`` only after re-reading: a peer may have stored a new pair."""
        deadline = self.clock() + self.policy.invalid_grant_grace_s
        delay = 0.05
        while True:
            again = self.store.get(latest.member_id)
            if again is None or again.state != PortalState.ACTIVE:
                return RefreshResult(Outcome.NOT_INSTALLED, again)
            if again.refresh_token != latest.refresh_token:
                self._log("invalid_grant after a peer rotated the token", again, "peer_refreshed")
                return RefreshResult(Outcome.PEER_REFRESHED, again)
            if self.clock() >= deadline:
                break
            self.sleep(min(delay, max(0.0, deadline - self.clock())))
            delay = min(delay * 2, 0.5)
        metrics.emit("RefreshFailed", reason="invalid_grant")
        result = transition(self.store, self.clock, latest, TokenState.REAUTH_REQUIRED, "invalid_grant")
        if result is not None:
            return result
        return RefreshResult(Outcome.REAUTH_REQUIRED, self.store.get(latest.member_id), "invalid_grant")

    def _on_not_installed(self, latest: Portal, exc: B24Error) -> RefreshResult:
        """The auth server says the app is gone: true after a lost ONAPPUNINSTALL, or a wrong secret.

        A wrong client_secret would say the same for every portal, so the answer is believed only
        when this portal confirms it: its stored access token is refused as not belonging to an
        installed app (not merely expired), or app.info says not installed. Confirmed, the portal is
        uninstalled as a real uninstall would do; otherwise it is a failing refresh, retried later.
        """
        again = self.store.get(latest.member_id)
        if again is not None and again.refresh_token != latest.refresh_token:
            return RefreshResult(Outcome.PEER_REFRESHED, again)
        if not self._gone_at_source(latest):
            return self._on_transient(latest, exc)
        saved, _ = mark_uninstalled(
            self.store,
            latest.member_id,
            clean=False,
            reason="not_installed",
            schedule=self.uninstall_schedule,
        )
        metrics.emit("RefreshFailed", reason="not_installed")
        if saved is not None:
            announce_token_state(latest, saved)
        return RefreshResult(Outcome.NOT_INSTALLED, saved or again, "the app is no longer installed")

    def _gone_at_source(self, portal: Portal) -> bool:
        return self.installation(portal) == Installation.GONE

    def installation(self, portal: Portal) -> Installation:
        """What the authorization server says of the app on this portal, asked with its stored token."""
        if not portal.access_token:
            return Installation.UNKNOWN
        try:
            info = self.auth_server.app_info(portal.access_token)
        except ExpiredToken:
            return Installation.UNKNOWN  # an expired token proves nothing either way
        except (AuthError, ApplicationNotInstalled):
            return Installation.GONE  # refused, not expired: the installation it belonged to is gone
        except B24Error:
            return Installation.UNKNOWN  # unreachable or garbage: not a confirmation
        if not info.install.installed or info.install.member_id != portal.member_id:
            return Installation.GONE
        return Installation.PRESENT

    def _on_payment_required(self, latest: Portal) -> RefreshResult:
        metrics.emit("RefreshFailed", reason="payment_required")
        now = int(self.clock())
        result = transition(
            self.store,
            self.clock,
            latest,
            TokenState.PAYMENT_REQUIRED,
            "payment_required",
            next_attempt_at=now + max(DAY_S, self.policy.min_interval_s) + random.randint(0, 3600),  # noqa: S311
        )
        if result is not None:
            return result
        return RefreshResult(Outcome.PAYMENT_REQUIRED, self.store.get(latest.member_id), "payment_required")

    def _on_transient(self, latest: Portal, exc: B24Error) -> RefreshResult:
        reason = failure_reason(exc)
        metrics.emit("RefreshFailed", reason=reason)
        now = int(self.clock())
        attempts = latest.refresh_attempts + 1
        if latest.token_state == TokenState.PAYMENT_REQUIRED:
            target, wait = TokenState.PAYMENT_REQUIRED, max(DAY_S, self.policy.min_interval_s)
        else:
            target = TokenState.REFRESH_FAILING
            wait = min(RETRY_BASE_S * 2 ** min(attempts - 1, 16), RETRY_MAX_S)
            wait = int(wait * random.uniform(0.75, 1.0))  # noqa: S311 - jitter, not crypto
        retry_at = now + max(1, wait)
        result = transition(
            self.store, self.clock, latest, target, reason, next_attempt_at=retry_at, attempts=attempts
        )
        if result is not None and result.outcome not in (Outcome.FAILING, Outcome.PAYMENT_REQUIRED):
            return result
        return RefreshResult(
            Outcome.FAILING,
            result.portal if result else latest,
            f"refresh failed ({reason})",
            retry_at=retry_at,
        )

    # ------------------------------------------------------------------ state changes

    # ------------------------------------------------------------------ helpers

    def _next_holder(self) -> str:
        with self._seq_lock:
            self._seq += 1
            return f"{self._holder}-{self._seq}"

    def _release(self, key: LeaseKey, holder: str) -> None:
        try:
            self.leases.release(key, holder)
        except Exception as exc:  # the lease expires by itself
            log_event(WARNING, "refresh lease not released", "refresh", error=exc)

    def _log(self, message: str, portal: Portal | None, outcome: str, **extra: str) -> None:
        logger.info(
            message,
            extra={
                "action": "refresh",
                "outcome": outcome,
                "member_id": portal.member_id if portal else "",
                **extra,
            },
        )
