"""Installation: trust nothing in the request until the authorization server vouches for the token.

Two doors lead here: the install frame of an app with UI (query DOMAIN/PROTOCOL/LANG, form AUTH_ID,
REFRESH_ID, APPLICATION_TOKEN, member_id...) and the ONAPPINSTALL callback (form ``auth[...]``).
Both become an ``InstallClaim`` (b24core.bitrix.inbound); the claim is checked at ``/rest/app.info``
of the authorization server (client_id is ours; member_id, domain and client_endpoint are the ones
claimed) before anything is stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from logging import ERROR, INFO, WARNING
from typing import Any

from b24core.aws import metrics
from b24core.aws.apigw import HttpError
from b24core.aws.logs import log_event, remember_secret
from b24core.bitrix.endpoints import EndpointRefused, check_endpoint
from b24core.bitrix.errors import AuthError, B24Error, BadResponse, TransportError
from b24core.bitrix.inbound import InstallClaim
from b24core.bitrix.oauth import AppInfo, AuthServer
from b24core.portals.announce import announce_token_state
from b24core.portals.model import Portal
from b24core.portals.sealing import token_matches
from b24core.portals.states import PortalState, TokenState
from b24core.portals.store import PortalStore
from b24core.portals.versioned import StaleWrite
from b24core.trust.admin import Caller, ask_portal

#: Asks the portal, with the claim's token, whether its user is an administrator (b24core.trust.admin).
AdminCheck = Callable[[str, str], Caller]


@dataclass(frozen=True)
class Opened:
    """A frame POST that proved itself: by an administrator (``stored``: trust was (re)written) or by
    an ordinary user of a portal the app is installed on (nothing stored: a user session only)."""

    portal: Portal
    user_id: str
    admin: bool
    stored: bool
    #: False when the portal could not say whether the user is an administrator (a box cut off from
    #: the authorization server refuses every token): the page shows the stored portal's state.
    confirmed: bool = True


@dataclass(eq=False)  # a service, compared by identity
class InstallService:
    store: PortalStore
    auth_server: AuthServer
    client_id: str
    allow_insecure_endpoints: bool
    clock: Callable[[], float] = time.time
    admin_check: AdminCheck = ask_portal

    def install(self, claim: InstallClaim) -> Portal:
        """Verify the claim at the authorization server and that an administrator sent it, then store
        the portal (idempotent): only administrators install apps, and every user holds a real token."""
        endpoint, info = self._verify(claim)
        caller = self._caller(claim, endpoint) or self._unconfirmed(claim)
        if not caller.admin:
            self._refuse("not_admin", claim, "the token's user is not an administrator of the portal")
            raise HttpError(403, "admin_required", "only a portal administrator can install the app")
        return self._store(claim, endpoint, info, caller)

    def open(self, claim: InstallClaim) -> Opened:
        """A frame POST (install page or any user opening the app). An administrator's re-stores the
        verified pair (install, reinstall, healing); an ordinary user's changes nothing and must carry
        the application_token stored for the portal."""
        endpoint, info = self._verify(claim)
        user_id = info.user_id or claim.user_id
        caller = self._caller(claim, endpoint)
        if caller is None:
            current = self.store.get(claim.member_id)
            if current is not None and current.state != PortalState.DELETED:
                if not token_matches(current.application_token, claim.application_token):
                    self._refuse("application_token_mismatch", claim, "unconfirmed frame, another token")
                    raise HttpError(403, "application_token_mismatch", "application_token does not match")
                return Opened(portal=current, user_id=user_id, admin=False, stored=False, confirmed=False)
            caller = self._unconfirmed(claim)
        if caller.admin:
            portal = self._store(claim, endpoint, info, caller)
            return Opened(portal=portal, user_id=user_id, admin=True, stored=True)
        current = self.store.get(claim.member_id)
        if current is None or current.state == PortalState.DELETED:
            self._refuse("not_admin", claim, "only an administrator installs the app")
            raise HttpError(403, "admin_required", "only a portal administrator can install the app")
        if not token_matches(current.application_token, claim.application_token):
            self._refuse(
                "application_token_mismatch", claim, "frame of a user with another application_token"
            )
            raise HttpError(403, "application_token_mismatch", "application_token does not match")
        return Opened(portal=current, user_id=user_id, admin=False, stored=False)

    def visit(self, claim: InstallClaim) -> Opened:
        """A page opened by any user of an installed portal (the app's own page or a placement): who
        they are and whether they administer the portal, for a user session. It stores nothing,
        whoever opens it, so opening a page never changes what the app trusts."""
        endpoint, info = self._verify(claim)
        current = self.store.get(claim.member_id)
        if current is None or current.state in (PortalState.DELETED, PortalState.NEW):
            raise HttpError(409, "not_installed", "the app is not installed on this portal")
        if claim.application_token and not token_matches(current.application_token, claim.application_token):
            self._refuse("application_token_mismatch", claim, "page opened with another application_token")
            raise HttpError(403, "application_token_mismatch", "application_token does not match")
        caller = self._caller(claim, endpoint)
        return Opened(
            portal=current,
            user_id=info.user_id or claim.user_id,
            admin=bool(caller and caller.admin),
            stored=False,
            confirmed=caller is not None,
        )

    def update(self, claim: InstallClaim, version: str) -> Portal:
        """ONAPPUPDATE: keep the NEW application_token (and the fresh tokens the event carries) only
        from an administrator's token the authorization server vouched for, for this portal, and only
        when the portal reports a version other than the stored one (a replayed or forged update of the
        same version changes nothing)."""
        endpoint, info = self._verify(claim)
        caller = self._caller(claim, endpoint)
        if caller is None:
            raise HttpError(
                503, "portal_unavailable", "the portal could not confirm the user's rights; try again"
            )
        if not caller.admin:
            self._refuse("not_admin", claim, "update by a token whose user is not an administrator")
            raise HttpError(403, "admin_required", "only a portal administrator's update is accepted")
        reported = caller.app_version or info.install.version
        now = int(self.clock())
        for _ in range(5):
            current = self.store.get(claim.member_id)
            if current is None or current.state == PortalState.DELETED:
                self._refuse("not_installed", claim, "update for a portal the app is not installed on")
                raise HttpError(409, "not_installed", "the app is not installed on this portal")
            if not reported or reported == current.app_version:
                self._refuse("version_unchanged", claim, "the portal reports the stored version")
                raise HttpError(403, "version_unchanged", "the portal reports no new version of the app")
            portal = _with_verified_pair(
                current,
                claim,
                endpoint,
                now,
                scope=info.scope or claim.scope or current.scope,
                status=info.install.status or current.status,
                app_version=reported,
                user_id=info.user_id or current.user_id,
                user_admin=True,
            )
            try:
                saved = self.store.save(portal)
            except StaleWrite:
                continue
            announce_token_state(current, saved)
            log_event(
                INFO,
                "portal updated",
                "update",
                saved.member_id,
                "stored",
                domain=saved.domain,
                app_version=saved.app_version,
            )
            return saved
        raise HttpError(409, "conflict", "the portal is being changed concurrently; try again")

    def _verify(self, claim: InstallClaim) -> tuple[str, AppInfo]:
        try:
            endpoint = check_endpoint(claim.client_endpoint, self.allow_insecure_endpoints)
        except EndpointRefused as exc:
            self._refuse("endpoint_refused", claim, str(exc))
            raise HttpError(400, "endpoint_refused", f"client endpoint refused: {exc}") from None
        try:
            info = self.auth_server.app_info(claim.access_token)
        except AuthError:
            self._refuse("token_rejected", claim, "authorization server rejected the token")
            raise HttpError(
                401, "token_rejected", "the authorization server does not accept this token"
            ) from None
        except (TransportError, BadResponse):
            log_event(ERROR, "authorization server unavailable", "install", claim.member_id, "error")
            raise HttpError(
                503, "auth_server_unavailable", "the authorization server could not be reached; try again"
            ) from None
        except B24Error as exc:
            self._refuse("token_rejected", claim, exc.code)
            raise HttpError(
                401, "token_rejected", f"the authorization server refused the token ({exc.code})"
            ) from None
        mismatches = []
        if info.client_id != self.client_id:
            mismatches.append("client_id")
        if info.install.member_id != claim.member_id:
            mismatches.append("member_id")
        if info.install.domain.lower() != claim.domain.lower():
            mismatches.append("domain")
        if info.install.client_endpoint.rstrip("/") != endpoint.rstrip("/"):
            mismatches.append("client_endpoint")
        if mismatches:
            reason = "token was issued for another app or portal (" + ", ".join(mismatches) + ")"
            self._refuse("claim_mismatch", claim, reason)
            raise HttpError(403, "claim_mismatch", reason)
        # Verified: from here on these values are this portal's, and must never be printed.
        for secret in (claim.access_token, claim.refresh_token, claim.application_token):
            remember_secret(secret)
        return endpoint, info

    def _caller(self, claim: InstallClaim, endpoint: str) -> Caller | None:
        """The portal's answer, or None when it could not give one (unreachable, or a box that cannot
        reach the authorization server and so refuses every token)."""
        try:
            return self.admin_check(endpoint, claim.access_token)
        except B24Error as exc:
            log_event(
                WARNING, "administrator check failed", claim.path, claim.member_id, "error", reason=exc.code
            )
            return None

    def _unconfirmed(self, claim: InstallClaim) -> Caller:
        """No answer from the portal. A portal the app does not hold yet may be stored (only an
        administrator can install an app, and no user has an app token before the install, so nothing
        can be taken over; a box cut off from the authorization server is then diagnosed and told what
        to open); a portal the app already trusts is never changed on an unconfirmed token."""
        current = self.store.get(claim.member_id)
        if current is None or current.state == PortalState.DELETED:
            return Caller(admin=True, app_version="", installed=False, confirmed=False)
        raise HttpError(
            503, "portal_unavailable", "the portal could not confirm the user's rights; try again"
        )

    def _store(self, claim: InstallClaim, endpoint: str, info: AppInfo, caller: Caller) -> Portal:
        now = int(self.clock())
        for _ in range(5):
            current = self.store.get(claim.member_id)
            base = current or Portal(
                member_id=claim.member_id, domain=claim.domain, client_endpoint=endpoint, installed_at=now
            )
            if base.state != PortalState.ACTIVE:
                base = base.with_state(PortalState.ACTIVE)
            portal = _with_verified_pair(
                base,
                claim,
                endpoint,
                now,
                scope=info.scope or claim.scope,
                status=info.install.status,
                user_id=info.user_id or claim.user_id or base.user_id,
                user_admin=caller.confirmed,
                app_version=caller.app_version or info.install.version or base.app_version,
                language=claim.language or base.language,
                install_path=claim.path,
                installed_at=base.installed_at or now,
            )
            try:
                saved = self.store.save(portal)
            except StaleWrite:
                continue
            if current is not None:
                announce_token_state(current, saved)
            log_event(
                INFO,
                "portal installed",
                "install",
                saved.member_id,
                "stored",
                domain=saved.domain,
                install_path=claim.path,
            )
            return saved
        raise HttpError(409, "conflict", "the portal is being changed concurrently; try again")

    def _refuse(self, reason: str, claim: InstallClaim, detail: str) -> None:
        metrics.emit("TrustChangesRefused", reason=reason)
        log_event(
            WARNING,
            "install refused" if claim.path != "update" else "update refused",
            "update" if claim.path == "update" else "install",
            claim.member_id,
            "refused",
            reason=reason,
            detail=detail,
            domain=claim.domain,
            install_path=claim.path,
        )


#: Why a portal is active again: a fresh pair the authorization server vouched for.
VERIFIED_PAIR = "verified_pair"


def _with_verified_pair(base: Portal, claim: InstallClaim, endpoint: str, now: int, **fields: Any) -> Portal:
    """The portal with the pair the authorization server just vouched for (install, reopen, update):
    tokens, endpoints and application_token from the claim, token custody back to active."""
    if base.token_state != TokenState.ACTIVE:
        base = replace(
            base.with_token_state(TokenState.ACTIVE), token_state_reason=VERIFIED_PAIR, token_state_at=now
        )
    return replace(
        base,
        domain=claim.domain,
        client_endpoint=endpoint,
        server_endpoint=claim.server_endpoint or base.server_endpoint,
        access_token=claim.access_token,
        refresh_token=claim.refresh_token,
        access_expires_at=now + claim.expires_in,
        application_token=claim.application_token,
        updated_at=now,
        refreshed_at=now,
        **fields,
    )
