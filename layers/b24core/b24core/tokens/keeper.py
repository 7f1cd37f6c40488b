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

from dataclasses import replace
from logging import INFO, WARNING
from urllib.parse import urlsplit

from b24core.aws import metrics
from b24core.aws.logs import log_event, remember_secret
from b24core.aws.settings import DAY_S
from b24core.bitrix.endpoints import EndpointRefused, check_endpoint
from b24core.bitrix.errors import (
    AuthError,
    B24Error,
    ExpiredToken,
    PortalMoved,
)
from b24core.bitrix.rest import endpoint_from_location
from b24core.portals import token_index
from b24core.portals.announce import announce_token_state
from b24core.portals.model import Portal
from b24core.portals.states import PortalState, TokenState
from b24core.portals.versioned import StaleWrite
from b24core.tokens.outcomes import (
    SAVE_ATTEMPTS,
    Installation,
    Outcome,
    RefreshReason,
    RefreshResult,
    RefreshUnavailable,
)
from b24core.tokens.pairs import foreign, with_pair
from b24core.tokens.refresh import Refresher


class TokenKeeper(Refresher):
    """Token custody for every function: refresh (b24core.tokens.refresh), take over a verified pair
    Bitrix24 hands over, follow a portal that moved, and confirm an uninstall at the source."""

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
        problem = foreign(info, self.client_id, member_id)
        if problem:
            log_event(WARNING, "fresh pair refused", "adopt", member_id, "refused", reason=problem)
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
            log_event(WARNING, "fresh pair refused", "adopt", member_id, "refused", reason="not_admin")
            return RefreshResult(Outcome.REJECTED, current, "not an administrator's pair")
        for _ in range(SAVE_ATTEMPTS):
            base = self.store.get(member_id)
            if (
                base is None
                or base.state == PortalState.DELETED
                or base.token_state == TokenState.UNINSTALLED
            ):
                return RefreshResult(Outcome.NOT_INSTALLED, base)
            updated = with_pair(
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
            announce_token_state(base, saved)
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
        problem = foreign(info, self.client_id, portal.member_id)
        try:
            confirmed = check_endpoint(info.install.client_endpoint, self.allow_insecure_endpoints)
        except EndpointRefused as exc:
            problem = problem or f"endpoint refused: {exc}"
            confirmed = ""
        same_target = confirmed.rstrip("/") == hint.rstrip("/") or (
            urlsplit(confirmed).netloc.lower() == urlsplit(hint).netloc.lower()
        )
        if problem or not same_target or confirmed == portal.client_endpoint:
            log_event(
                WARNING,
                "portal redirect not confirmed",
                "relocate",
                portal.member_id,
                "refused",
                reason=problem or "auth server names another address",
            )
            raise PortalMoved(
                "the portal's new address is not confirmed by the auth server", location=location
            )
        for _ in range(SAVE_ATTEMPTS):
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
            log_event(
                INFO,
                "portal moved",
                "relocate",
                saved.member_id,
                "updated",
                old_domain=base.domain,
                domain=saved.domain,
            )
            metrics.emit("PortalsMoved")
            return saved
        raise RefreshUnavailable("the portal kept changing while its address was updated")

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
