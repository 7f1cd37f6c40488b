"""Token custody: refresh only at the authorization server, exactly once per refresh token.

Refresh tokens are single-use (settings/oauth/auto-renewal.md). Two Lambdas refreshing one portal at
once would leave one of them holding a dead token, so every refresh of a portal runs under a lease
(``b24core.tokens.lease``, a conditional write in the app's table) and saves the new pair with the portal's
optimistic version. A caller that loses the race does not refresh: it waits and re-reads the store
until the winner's pair is there. ``invalid_grant`` is believed only after the store is re-read (a
peer may have rotated the token meanwhile); then the portal needs its admin (``reauth_required``).

Token states and what moves a portal between them (the transitions themselves are checked in
``b24core.portals.states``):

* active → refresh_failing: the auth server is down or answers 5xx/garbage; retried with backoff,
  the portal keeps working while its access token lives.
* active / refresh_failing / payment_required → reauth_required: ``invalid_grant``, confirmed.
* active / refresh_failing → payment_required: ``PAYMENT_REQUIRED``; probed once a day.
* any of them → active: a successful refresh, or a verified fresh pair (``adopt``: the install page
  opened again, ONAPPINSTALL, ONAPPUPDATE, an event carrying a refresh token).

Every transition is logged (never a token) and counted (``TokenStateEntered{state}``).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

from b24core.aws import metrics
from b24core.aws.logs import logger, remember_secret
from b24core.aws.settings import DAY_S, TokenPolicy
from b24core.bitrix.endpoints import EndpointRefused, check_endpoint
from b24core.bitrix.errors import (
    ApplicationNotInstalled,
    AuthError,
    B24Error,
    ExpiredToken,
    InvalidClient,
    InvalidGrant,
    PaymentRequired,
    PortalMoved,
)
from b24core.bitrix.oauth import AppInfo, TokenPair
from b24core.bitrix.rest import endpoint_from_location
from b24core.portals import token_index
from b24core.portals.announce import announce_token_state
from b24core.portals.model import Portal
from b24core.portals.states import PortalState, TokenState
from b24core.portals.store import PortalStore, StaleWrite
from b24core.tokens.lease import LeaseKey, LeaseStore
from b24core.trust.admin import Caller, ask_portal
from b24core.trust.uninstall import UninstallSchedule, mark_uninstalled

# Backoff while refreshes fail for transient reasons: 30 s, 1 min, 2 min ... at most an hour.
RETRY_BASE_S = 30
RETRY_MAX_S = 3600
_SAVE_ATTEMPTS = 8


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


Throttle = Callable[[], None]


class TokenKeeper:
    def __init__(
        self,
        store: PortalStore,
        auth_server: AuthServerClient,
        client_id: str,
        secret: SecretSource,
        leases: LeaseStore,
        policy: TokenPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        allow_insecure_endpoints: bool = False,
        uninstall_schedule: UninstallSchedule | None = None,
        admin_check: Callable[[str, str], Caller] = ask_portal,
    ) -> None:
        self.admin_check = admin_check
        self.store = store
        #: What a confirmed "app not installed" clears besides the record (the capability re-check).
        self.uninstall_schedule = uninstall_schedule
        self.auth_server = auth_server
        self.client_id = client_id
        self.secret = secret
        self.leases = leases
        self.policy = policy or TokenPolicy()
        self.clock = clock
        self.sleep = sleep
        self.allow_insecure = allow_insecure_endpoints
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

    def adopt(
        self,
        member_id: str,
        access_token: str,
        refresh_token: str,
        expires_in: int = 3600,
        source: str = "event",
    ) -> RefreshResult:
        """Take a fresh pair Bitrix24 handed over (ONAPPUPDATE, ONOFFLINEEVENT, a frame) when it helps.

        It helps when the portal cannot refresh (reauth_required, payment_required, refresh_failing)
        or its keep-alive is due (then only a pair of the same user, so the app's permissions do not
        change). The pair is checked at the authorization server before anything is stored.
        """
        now = int(self.clock())
        current = self.store.get(member_id)
        if current is None or current.state == PortalState.DELETED:
            return RefreshResult(Outcome.NOT_INSTALLED, current, "unknown or uninstalled portal")
        if current.token_state == TokenState.UNINSTALLED:
            return RefreshResult(Outcome.NOT_INSTALLED, current, "uninstalled portal")
        unhealthy = current.token_state != TokenState.ACTIVE
        due = token_index.keepalive_due(current, now, self.policy.keepalive_age_s)
        if not (unhealthy or due) or not access_token or not refresh_token:
            return RefreshResult(Outcome.NOT_DUE, current)
        try:
            info = self.auth_server.app_info(access_token)
        except B24Error as exc:
            self._log("fresh pair not verified", current, "rejected", reason=exc.code, source=source)
            return RefreshResult(Outcome.REJECTED, current, exc.code)
        problem = self._foreign(info, member_id)
        if problem:
            logger.warning(
                "fresh pair refused",
                extra={"action": "adopt", "outcome": "refused", "reason": problem, "member_id": member_id},
            )
            return RefreshResult(Outcome.REJECTED, current, problem)
        remember_secret(access_token)  # vouched for by the auth server: this portal's now
        remember_secret(refresh_token)
        if not unhealthy and (info.user_id or "") != (current.user_id or info.user_id or ""):
            return RefreshResult(Outcome.NOT_DUE, current, "pair of another user; keep-alive left to sweep")
        # The app's background calls run as an administrator: any user's genuine pair is not enough.
        try:
            admin = self.admin_check(current.client_endpoint, access_token).admin
        except B24Error as exc:
            return RefreshResult(Outcome.REJECTED, current, f"administrator check failed ({exc.code})")
        if not admin:
            metrics.emit("TrustChangesRefused", reason="not_admin")
            logger.warning(
                "fresh pair refused",
                extra={
                    "action": "adopt",
                    "outcome": "refused",
                    "reason": "not_admin",
                    "member_id": member_id,
                },
            )
            return RefreshResult(Outcome.REJECTED, current, "not an administrator's pair")
        for _ in range(_SAVE_ATTEMPTS):
            base = self.store.get(member_id)
            if (
                base is None
                or base.state == PortalState.DELETED
                or base.token_state == TokenState.UNINSTALLED
            ):
                return RefreshResult(Outcome.NOT_INSTALLED, base)
            updated = self._with_pair(
                base,
                access_token,
                refresh_token,
                now + max(0, min(int(expires_in or 3600), DAY_S)),
                now,
                f"adopted from {source}",
            )
            updated = replace(updated, user_id=info.user_id or base.user_id, user_admin=True)
            try:
                saved = self.store.save(updated)
            except StaleWrite:
                continue
            self._announce(base, saved)
            metrics.emit("TokensAdopted", source=source)
            self._log("fresh pair adopted", saved, "adopted", source=source)
            return RefreshResult(Outcome.ADOPTED, saved)
        return RefreshResult(Outcome.BUSY, current, "the portal kept changing; not adopted")

    def relocate(self, portal: Portal, location: str, method: str) -> Portal:
        """The portal redirected a call: believe the new address only if the auth server confirms it."""
        hint = endpoint_from_location(location, method, portal.client_endpoint)
        try:
            info = self.auth_server.app_info(portal.access_token)
        except ExpiredToken:
            portal = self.refresh(portal)
            info = self.auth_server.app_info(portal.access_token)
        except AuthError as exc:
            raise PortalMoved("the moved portal's address could not be confirmed", location=location) from exc
        problem = self._foreign(info, portal.member_id)
        try:
            confirmed = check_endpoint(info.install.client_endpoint, self.allow_insecure)
        except EndpointRefused as exc:
            problem = problem or f"endpoint refused: {exc}"
            confirmed = ""
        same_target = confirmed.rstrip("/") == hint.rstrip("/") or (
            urlsplit(confirmed).netloc.lower() == urlsplit(hint).netloc.lower()
        )
        if problem or not same_target or confirmed == portal.client_endpoint:
            logger.warning(
                "portal redirect not confirmed",
                extra={
                    "action": "relocate",
                    "outcome": "refused",
                    "reason": problem or "auth server names another address",
                    "member_id": portal.member_id,
                },
            )
            raise PortalMoved(
                "the portal's new address is not confirmed by the auth server", location=location
            )
        for _ in range(_SAVE_ATTEMPTS):
            base = self.store.get(portal.member_id) or portal
            moved = replace(
                base,
                client_endpoint=confirmed,
                domain=info.install.domain or base.domain,
                updated_at=int(self.clock()),
            )
            try:
                saved = self.store.save(moved)
            except StaleWrite:
                continue
            logger.info(
                "portal moved",
                extra={
                    "action": "relocate",
                    "outcome": "updated",
                    "member_id": saved.member_id,
                    "old_domain": base.domain,
                    "domain": saved.domain,
                },
            )
            metrics.emit("PortalsMoved")
            return saved
        raise RefreshUnavailable("the portal kept changing while its address was updated")

    # ------------------------------------------------------------------ the refresh itself
    def _settled(self, seen: Portal, latest: Portal | None, reason: RefreshReason) -> RefreshResult | None:
        """The result when nothing (more) must be done for ``reason``; None when a refresh is needed."""
        now = int(self.clock())
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
        for attempt in range(_SAVE_ATTEMPTS):
            if base is None or base.state != PortalState.ACTIVE or base.token_state == TokenState.UNINSTALLED:
                self._log("refreshed pair discarded: portal uninstalled meanwhile", latest, "discarded")
                return RefreshResult(Outcome.NOT_INSTALLED, base)
            if base.refresh_token == pair.refresh_token:
                saved = base  # an earlier attempt did store it (its answer was lost)
                break
            updated = self._with_pair(base, pair.access_token, pair.refresh_token, expires, now, "refreshed")
            try:
                saved = self.store.save(updated)
                break
            except StaleWrite:
                base = self.store.get(latest.member_id)
            except Exception as exc:  # the table itself is failing: keep trying while we can
                if attempt == _SAVE_ATTEMPTS - 1:
                    logger.error(
                        "refreshed pair could not be saved",
                        extra={
                            "action": "refresh",
                            "outcome": "save_failed",
                            "member_id": latest.member_id,
                            "reason": type(exc).__name__,
                        },
                    )
                    raise
                self.sleep(delay)
                delay = min(delay * 2, 1.0)
                base = self.store.get(latest.member_id)
        else:
            raise RefreshUnavailable("the portal kept changing while its new tokens were saved")
        self._announce(latest, saved)
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
        result = self._transition(latest, TokenState.REAUTH_REQUIRED, "invalid_grant")
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
            self._announce(latest, saved)
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

    def confirm_removed(self, portal: Portal) -> Installation:
        """Before an uninstall acts (ONAPPUNINSTALL proves itself only with the application_token every
        user's browser knows): GONE, PRESENT, or UNKNOWN when neither could be learned now. An expired
        stored token is refreshed first; a refresh refused because the app is gone settles it."""
        verdict = self.installation(portal)
        if verdict != Installation.UNKNOWN:
            return verdict
        result = self.attempt(portal, RefreshReason.EXPIRED)
        if result.outcome == Outcome.NOT_INSTALLED:
            return Installation.GONE
        if result.outcome in (Outcome.REFRESHED, Outcome.PEER_REFRESHED) and result.portal is not None:
            return self.installation(result.portal)
        return Installation.UNKNOWN

    def _on_payment_required(self, latest: Portal) -> RefreshResult:
        metrics.emit("RefreshFailed", reason="payment_required")
        now = int(self.clock())
        result = self._transition(
            latest,
            TokenState.PAYMENT_REQUIRED,
            "payment_required",
            next_attempt_at=now + max(DAY_S, self.policy.min_interval_s) + random.randint(0, 3600),  # noqa: S311
        )
        if result is not None:
            return result
        return RefreshResult(Outcome.PAYMENT_REQUIRED, self.store.get(latest.member_id), "payment_required")

    def _on_transient(self, latest: Portal, exc: B24Error) -> RefreshResult:
        reason = _reason(exc)
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
        result = self._transition(latest, target, reason, next_attempt_at=retry_at, attempts=attempts)
        if result is not None and result.outcome not in (Outcome.FAILING, Outcome.PAYMENT_REQUIRED):
            return result
        return RefreshResult(
            Outcome.FAILING,
            result.portal if result else latest,
            f"refresh failed ({reason})",
            retry_at=retry_at,
        )

    # ------------------------------------------------------------------ state changes
    def _transition(
        self,
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
        for _ in range(_SAVE_ATTEMPTS):
            if base is None or base.state != PortalState.ACTIVE:
                return RefreshResult(Outcome.NOT_INSTALLED, base)
            if base.refresh_token != portal.refresh_token:
                return RefreshResult(Outcome.PEER_REFRESHED, base)
            now = int(self.clock())
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
                saved = self.store.save(updated)
            except StaleWrite:
                base = self.store.get(portal.member_id)
                continue
            self._announce(base, saved)
            return RefreshResult(outcome, saved, reason, retry_at=next_attempt_at or None)
        return None

    def _with_pair(
        self, base: Portal, access: str, refresh: str, expires_at: int, now: int, reason: str
    ) -> Portal:
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

    def _announce(self, before: Portal, after: Portal) -> None:
        announce_token_state(before, after)

    # ------------------------------------------------------------------ helpers
    def _foreign(self, info: AppInfo, member_id: str) -> str:
        if info.client_id != self.client_id:
            return "token of another app"
        if info.install.member_id != member_id:
            return "token of another portal"
        if not info.install.installed:
            return "app not installed on the portal"
        return ""

    def _next_holder(self) -> str:
        with self._seq_lock:
            self._seq += 1
            return f"{self._holder}-{self._seq}"

    def _release(self, key: LeaseKey, holder: str) -> None:
        try:
            self.leases.release(key, holder)
        except Exception as exc:  # the lease expires by itself
            logger.warning(
                "refresh lease not released", extra={"action": "refresh", "reason": type(exc).__name__}
            )

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


def _reason(exc: B24Error) -> str:
    if isinstance(exc, InvalidClient):
        return "invalid_client"
    return {
        "TRANSPORT_ERROR": "auth_server_unreachable",
        "BAD_RESPONSE": "auth_server_bad_answer",
    }.get(exc.code, exc.code.lower() if exc.code else "error")
