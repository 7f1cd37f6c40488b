"""Token refresh at the authorization server, saved with an optimistic version check.

Refresh tokens are single-use: whoever loses the save race must not try the old token again, it
re-reads the store and uses the pair the winner saved.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from b24core.logs import logger
from b24core.portals.model import Portal
from b24core.portals.states import TokenState
from b24core.portals.store import PortalStore, StaleWrite
from b24core.protocol.errors import InvalidGrant, PaymentRequired, TransportError
from b24core.protocol.oauth import AuthServer


class PortalUnavailable(RuntimeError):
    """The portal cannot be called now (uninstalled, re-authorization or payment needed)."""


class TokenKeeper:
    def __init__(
        self,
        store: PortalStore,
        auth_server: AuthServer,
        client_id: str,
        secret: Callable[[], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.auth_server = auth_server
        self.client_id = client_id
        self.secret = secret
        self.clock = clock

    def refresh(self, portal: Portal) -> Portal:
        """Refresh ``portal``'s pair once; return the portal with a usable access token."""
        latest = self.store.get(portal.member_id)
        if latest is None:
            raise PortalUnavailable("portal not installed")
        if latest.access_token != portal.access_token:
            return latest  # a peer refreshed already
        try:
            pair = self.auth_server.refresh(self.client_id, self.secret(), latest.refresh_token)
        except InvalidGrant:
            again = self.store.get(portal.member_id)
            if again is not None and again.refresh_token != latest.refresh_token:
                return again
            self._set_token_state(latest, TokenState.REAUTH_REQUIRED)
            raise PortalUnavailable("refresh token rejected: the admin must reopen the app") from None
        except PaymentRequired:
            self._set_token_state(latest, TokenState.PAYMENT_REQUIRED)
            raise PortalUnavailable("the app's subscription on this portal has expired") from None
        except TransportError:
            self._set_token_state(latest, TokenState.REFRESH_FAILING)
            raise
        now = int(self.clock())
        updated = replace(
            latest if latest.token_state == TokenState.ACTIVE else latest.with_token_state(TokenState.ACTIVE),
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            access_expires_at=pair.expires or now + 3600,
            refreshed_at=now,
            updated_at=now,
        )
        try:
            saved = self.store.save(updated)
        except StaleWrite:
            # A peer wrote meanwhile; our new pair is the only valid one, so keep it on top of theirs.
            current = self.store.get(portal.member_id)
            if current is None:
                raise PortalUnavailable("portal removed during refresh") from None
            saved = self.store.save(
                replace(
                    current,
                    access_token=pair.access_token,
                    refresh_token=pair.refresh_token,
                    access_expires_at=updated.access_expires_at,
                    refreshed_at=now,
                    updated_at=now,
                )
            )
        logger.info(
            "tokens refreshed", extra={"action": "refresh", "outcome": "ok", "member_id": saved.member_id}
        )
        return saved

    def _set_token_state(self, portal: Portal, state: TokenState) -> None:
        if portal.token_state == state:
            return
        try:
            self.store.save(portal.with_token_state(state))
            logger.warning(
                "token state changed",
                extra={"action": "refresh", "outcome": str(state), "member_id": portal.member_id},
            )
        except StaleWrite:
            pass
