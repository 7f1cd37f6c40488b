"""Where incoming-webhook connections live: one item beside the portal's record (sk=WEBHOOK), sealed
like tokens. How the portal's changes reach the app is its delivery route's business (delivery/)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from b24core.aws.logs import remember_secret
from b24core.bitrix.webhook import IncomingWebhook
from b24core.portals.keys import WEBHOOK_SK, portal_pk
from b24core.portals.sealing import PlainCodec, TokenCodec, hash_token
from b24core.portals.state_items import StateItem, save_versioned, state_model
from b24core.portals.versioned import InMemoryStateStore


class AuthMode(StrEnum):
    OAUTH = "oauth"
    WEBHOOK = "webhook"


# ------------------------------------------------------------------ storage
@dataclass(frozen=True)
class WebhookConnection:
    """One portal's webhook connection (pk=PORTAL#member_id, sk=WEBHOOK, beside its record)."""

    member_id: str
    base: str
    user_id: int
    code: str = field(repr=False)
    outgoing_token: str = field(default="", repr=False)
    scopes: tuple[str, ...] = ()
    connected_at: int = 0
    version: int = 0

    @property
    def incoming(self) -> IncomingWebhook:
        return IncomingWebhook(self.base, self.user_id, self.code)

    def public_view(self) -> dict[str, Any]:
        """For operators: never the code nor the outgoing token."""
        return {
            "auth_mode": str(AuthMode.WEBHOOK),
            "incoming_webhook": self.incoming.masked(),
            "webhook_user_id": self.user_id,
            "webhook_scopes": list(self.scopes),
            "has_outgoing_token": bool(self.outgoing_token),
            "webhook_connected_at": self.connected_at,
        }


class WebhookStore(Protocol):
    def get(self, member_id: str) -> WebhookConnection | None: ...

    def save(self, conn: WebhookConnection) -> WebhookConnection: ...

    def delete(self, member_id: str) -> None: ...


class InMemoryWebhookStore(InMemoryStateStore[WebhookConnection]):
    """Same contract as the DynamoDB store, for tests."""

    def delete(self, member_id: str) -> None:
        with self._lock:
            self._items.pop(member_id, None)


class DynamoWebhookStore:
    """The code is sealed and the outgoing token hashed at this boundary (b24core.portals.sealing)."""

    def __init__(
        self, table_name: str, region: str, host: str | None = None, codec: TokenCodec | None = None
    ) -> None:
        self.model = state_model(table_name, region, host)
        self.codec: TokenCodec = codec or PlainCodec()

    def get(self, member_id: str) -> WebhookConnection | None:
        try:
            item = self.model.get(portal_pk(member_id), WEBHOOK_SK, consistent_read=True)
        except self.model.DoesNotExist:
            return None
        return _connection(item, self.codec)

    def save(self, conn: WebhookConnection) -> WebhookConnection:
        state = {
            "base": conn.base,
            "user_id": conn.user_id,
            "code": self.codec.seal(conn.member_id, "webhook_code", conn.code),
            "outgoing_token": hash_token(conn.outgoing_token),
            "scopes": list(conn.scopes),
            "connected_at": conn.connected_at,
        }
        item = self.model(portal_pk(conn.member_id), WEBHOOK_SK, member_id=conn.member_id)
        item.state = json.dumps(state, sort_keys=True)
        if conn.version:
            item.version = conn.version
        save_versioned(item, conn.member_id)  # StaleWrite, or NewerItem over a newer release's item
        return replace(conn, version=int(item.version or 0), outgoing_token=hash_token(conn.outgoing_token))

    def delete(self, member_id: str) -> None:
        try:
            self.model.get(portal_pk(member_id), WEBHOOK_SK).delete()
        except self.model.DoesNotExist:
            return


def _connection(item: StateItem, codec: TokenCodec) -> WebhookConnection:
    raw = json.loads(item.state)
    conn = WebhookConnection(
        member_id=str(item.member_id),
        base=str(raw["base"]),
        user_id=int(raw["user_id"]),
        code=codec.open(str(item.member_id), "webhook_code", str(raw["code"])),
        outgoing_token=str(raw.get("outgoing_token") or ""),
        scopes=tuple(raw.get("scopes") or ()),
        connected_at=int(raw.get("connected_at") or 0),
        version=int(item.version or 0),
    )
    remember_secret(conn.code)
    remember_secret(conn.outgoing_token)
    return conn


def auth_mode(member_id: str, webhooks: WebhookStore) -> AuthMode:
    return AuthMode.WEBHOOK if webhooks.get(member_id) is not None else AuthMode.OAUTH
