"""Where incoming-webhook connections live: one item beside the portal's record (sk=WEBHOOK), sealed
like tokens, indexed by how the portal's changes reach the app (gsi1: polled, or by outgoing webhook)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from pynamodb.exceptions import PutError

from b24core.aws.logs import remember_secret
from b24core.bitrix.webhook import IncomingWebhook
from b24core.portals.keys import OUTGOING_PARTITION, POLL_PARTITION, WEBHOOK_SK, portal_pk
from b24core.portals.sealing import PlainCodec, TokenCodec, hash_token
from b24core.portals.state_items import StateItem, state_model
from b24core.portals.versioned import InMemoryStateStore, StaleWrite

#: gsi1 partition of the webhook-connected portals whose changes are polled (no outgoing webhook, or


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
    #: Set when the delivery watchdog switched an outgoing-webhook portal to change polling because its
    #: events stopped arriving (b24core.delivery.watchdog); 0 while events come by the outgoing webhook.
    polling_since: int = 0
    polling_reason: str = ""
    version: int = 0

    @property
    def polled(self) -> bool:
        """Without an outgoing webhook, or while its events do not arrive, changes come by polling."""
        return not self.outgoing_token or bool(self.polling_since)

    @property
    def events_by(self) -> str:
        return "change polling" if self.polled else "outgoing webhook"

    @property
    def watched(self) -> bool:
        """An outgoing webhook is set: the delivery watchdog checks that its events arrive."""
        return bool(self.outgoing_token)

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
            "events_by": self.events_by,
            "polling_since": self.polling_since,
            "polling_reason": self.polling_reason,
            "webhook_connected_at": self.connected_at,
        }


class WebhookStore(Protocol):
    def get(self, member_id: str) -> WebhookConnection | None: ...

    def save(self, conn: WebhookConnection) -> WebhookConnection: ...

    def delete(self, member_id: str) -> None: ...

    def polled_members(self, limit: int = 1000) -> list[str]: ...

    def watched(self, limit: int = 1000) -> list[WebhookConnection]:
        """Connections with an outgoing webhook (polled meanwhile or not), for the delivery watchdog."""
        ...


class InMemoryWebhookStore(InMemoryStateStore[WebhookConnection]):
    """Same contract as the DynamoDB store, for tests."""

    def delete(self, member_id: str) -> None:
        with self._lock:
            self._items.pop(member_id, None)

    def polled_members(self, limit: int = 1000) -> list[str]:
        with self._lock:
            return sorted(m for m, c in self._items.items() if c.polled)[:limit]

    def watched(self, limit: int = 1000) -> list[WebhookConnection]:
        with self._lock:
            return [c for _, c in sorted(self._items.items()) if c.watched][:limit]


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
            "polling_since": conn.polling_since,
            "polling_reason": conn.polling_reason,
        }
        item = self.model(
            portal_pk(conn.member_id),
            WEBHOOK_SK,
            member_id=conn.member_id,
            gsi1pk=POLL_PARTITION if conn.polled else OUTGOING_PARTITION,
            gsi1sk=conn.member_id,
        )
        item.state = json.dumps(state, sort_keys=True)
        if conn.version:
            item.version = conn.version
        try:
            item.save()
        except PutError as exc:
            if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
                raise StaleWrite(conn.member_id) from None
            raise
        return replace(conn, version=int(item.version or 0), outgoing_token=hash_token(conn.outgoing_token))

    def delete(self, member_id: str) -> None:
        try:
            self.model.get(portal_pk(member_id), WEBHOOK_SK).delete()
        except self.model.DoesNotExist:
            return

    def polled_members(self, limit: int = 1000) -> list[str]:
        """Through gsi1, never a scan (the schedule runs every minute)."""
        return [i.member_id for i in self.model.index.query(POLL_PARTITION, limit=limit)][:limit]

    def watched(self, limit: int = 1000) -> list[WebhookConnection]:
        """Both gsi1 partitions (the index projects the whole item): outgoing-webhook portals, and the
        polled ones among them that the watchdog switched to polling."""
        out: list[WebhookConnection] = []
        for partition in (OUTGOING_PARTITION, POLL_PARTITION):
            for item in self.model.index.query(partition, limit=limit):
                conn = _connection(item, self.codec)
                if conn.watched:
                    out.append(conn)
        return out[:limit]


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
        polling_since=int(raw.get("polling_since") or 0),
        polling_reason=str(raw.get("polling_reason") or ""),
        version=int(item.version or 0),
    )
    remember_secret(conn.code)
    remember_secret(conn.outgoing_token)
    return conn


def auth_mode(member_id: str, webhooks: WebhookStore) -> AuthMode:
    return AuthMode.WEBHOOK if webhooks.get(member_id) is not None else AuthMode.OAUTH
