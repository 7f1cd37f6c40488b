"""Where portal records live: a small interface, an in-memory one for unit tests, DynamoDB for real.

Writes are optimistic: every save names the version it read, so two Lambdas can never silently
overwrite each other's tokens (one of them gets ``StaleWrite`` and re-reads).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Protocol

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.exceptions import DeleteError

from b24core.aws.dynamo import Gsi1, TableItem, bind_model
from b24core.portals import token_index
from b24core.portals.directory import PortalDirectory, sort_key
from b24core.portals.keys import PORTAL_SK, portal_pk
from b24core.portals.model import REFRESH_KEEPALIVE_S, Portal
from b24core.portals.schema import ITEM_SCHEMA, NewerItem, newer_than_this, read_enum
from b24core.portals.sealing import PlainCodec, TokenCodec, hash_token
from b24core.portals.state_items import save_versioned
from b24core.portals.states import PortalState, TokenState
from b24core.portals.versioned import InMemoryStateStore

_LISTED_MAX = 20_000


@dataclass(frozen=True)
class IndexPage:
    """One page of a gsi1 token partition (b24core.portals.token_index), in sort-key order."""

    portals: list[Portal]
    next_key: dict[str, Any] | None
    read: int  # items the query read (what DynamoDB bills), never more than it returned


class PortalStore(Protocol):
    def get(self, member_id: str) -> Portal | None: ...

    def save(self, portal: Portal) -> Portal:
        """Create (version 0) or update (the version read); return the stored value."""
        ...

    def list_all(self, limit: int = 1000) -> list[Portal]: ...


class InMemoryPortalStore(InMemoryStateStore[Portal]):
    """Same contract as the DynamoDB store, for pure unit tests."""

    def save(self, state: Portal) -> Portal:
        if state.newer_release:
            raise NewerItem(state.member_id, state.newer_release)
        return super().save(state)

    def list_all(self, limit: int = 1000) -> list[Portal]:
        return sorted(self._items.values(), key=lambda p: p.domain)[:limit]

    # ---- the token index, computed the way DynamoDB's gsi1 would hold it
    def _partition(self, partition: str, below: str | None) -> list[tuple[str, Portal]]:
        rows = []
        for portal in self._items.values():
            pk, sk = token_index.index_keys(portal)
            if pk == partition and sk is not None and (below is None or sk < below):
                rows.append((sk, portal))
        return sorted(rows, key=lambda r: r[0])

    def index_page(
        self, partition: str, below: str | None, limit: int = 100, start_key: dict[str, Any] | None = None
    ) -> IndexPage:
        rows = self._partition(partition, below)
        after = str((start_key or {}).get("gsi1sk", ""))
        rows = [r for r in rows if r[0] > after][:limit]
        nxt = {"gsi1sk": rows[-1][0]} if len(rows) == limit else None
        return IndexPage([p for _, p in rows], nxt, len(rows))

    def count_index(self, partition: str, below: str | None = None) -> int:
        return len(self._partition(partition, below))

    def listed_page(self, limit: int = 100, start_key: dict[str, Any] | None = None) -> IndexPage:
        """Every portal in directory order (domain, member_id), as the DynamoDB store lists them."""
        rows = sorted((sort_key(p.domain, p.member_id), p) for p in self._items.values())
        after = str((start_key or {}).get("gsi1sk", ""))
        rows = [r for r in rows if r[0] > after][:limit]
        nxt = {"gsi1sk": rows[-1][0]} if len(rows) == limit else None
        return IndexPage([p for _, p in rows], nxt, len(rows))

    def due_for_refresh(self, now: int, limit: int = 1000, age_s: int = REFRESH_KEEPALIVE_S) -> list[Portal]:
        due = self.index_page(token_index.RETRY, token_index.upper_bound(now), limit).portals
        bound = token_index.upper_bound(now - age_s)
        return due + self.index_page(token_index.REFRESH, bound, limit).portals


class _PortalItem(TableItem):
    """Single-table layout: pk=PORTAL#member_id, sk=PORTAL; gsi1 lists portals by refresh due time."""

    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    member_id = UnicodeAttribute()
    domain = UnicodeAttribute()
    client_endpoint = UnicodeAttribute()
    server_endpoint = UnicodeAttribute(null=True)
    state = UnicodeAttribute()
    token_state = UnicodeAttribute()
    access_token = UnicodeAttribute(null=True)
    refresh_token = UnicodeAttribute(null=True)
    access_expires_at = NumberAttribute(default=0)
    application_token = UnicodeAttribute(null=True)
    webhook_token = UnicodeAttribute(null=True)
    scope = UnicodeAttribute(null=True)
    status = UnicodeAttribute(null=True)
    user_id = UnicodeAttribute(null=True)
    user_admin = BooleanAttribute(null=True)
    language = UnicodeAttribute(null=True)
    app_version = UnicodeAttribute(null=True)
    installed_at = NumberAttribute(default=0)
    updated_at = NumberAttribute(default=0)
    refreshed_at = NumberAttribute(default=0)
    install_path = UnicodeAttribute(null=True)
    capabilities = UnicodeAttribute(null=True)
    token_state_reason = UnicodeAttribute(null=True)
    token_state_at = NumberAttribute(default=0)
    refresh_attempts = NumberAttribute(default=0)
    next_attempt_at = NumberAttribute(default=0)
    #: The item schema of the release that saved it (b24core.portals.schema); absent = 0.
    schema = NumberAttribute(null=True)
    version = VersionAttribute()
    refresh_index = Gsi1()


@lru_cache(maxsize=8)
def _portal_model(table_name: str, region: str, host: str | None) -> type[_PortalItem]:
    return bind_model(_PortalItem, table_name, region, host)


def _to_portal(item: _PortalItem, codec: TokenCodec) -> Portal:
    mid = item.member_id
    caps: dict[str, Any] = json.loads(item.capabilities) if item.capabilities else {}
    unknown: list[str] = []
    # Stand-ins for values a newer release added: not active (nothing acts on it), no refresh attempted.
    state = read_enum(PortalState, item.state, PortalState.BLOCKED, unknown, "state")
    token_state = read_enum(TokenState, item.token_state, TokenState.REAUTH_REQUIRED, unknown, "token_state")
    return Portal(
        member_id=item.member_id,
        domain=item.domain,
        client_endpoint=item.client_endpoint,
        server_endpoint=item.server_endpoint or "",
        state=state,
        token_state=token_state,
        access_token=codec.open(mid, "access_token", item.access_token or ""),
        refresh_token=codec.open(mid, "refresh_token", item.refresh_token or ""),
        access_expires_at=int(item.access_expires_at or 0),
        application_token=item.application_token or "",
        webhook_token=item.webhook_token or "",
        scope=item.scope or "",
        status=item.status or "",
        user_id=item.user_id or "",
        user_admin=bool(item.user_admin),
        language=item.language or "",
        app_version=item.app_version or "",
        installed_at=int(item.installed_at or 0),
        updated_at=int(item.updated_at or 0),
        refreshed_at=int(item.refreshed_at or 0),
        install_path=item.install_path or "",
        capabilities=caps,
        token_state_reason=item.token_state_reason or "",
        token_state_at=int(item.token_state_at or 0),
        refresh_attempts=int(item.refresh_attempts or 0),
        next_attempt_at=int(item.next_attempt_at or 0),
        version=int(item.version or 0),
        newer_release=newer_than_this(item.schema, unknown),
    )


class DynamoPortalStore:
    """Portal records in the app's DynamoDB table (template.yaml: AppTable).

    Tokens cross ``codec`` here and nowhere else (b24core.portals.sealing): sealed on save, opened on
    read; application and webhook tokens are stored as hashes. Without a key (PlainCodec) sealed values
    are read and written back unopened.
    """

    def __init__(
        self, table_name: str, region: str, host: str | None = None, codec: TokenCodec | None = None
    ) -> None:
        self._model = _portal_model(table_name, region, host)
        self.codec: TokenCodec = codec or PlainCodec()
        self.directory = PortalDirectory(table_name, region, host)
        # member_id -> domain whose directory entry this process wrote or found current: a warm
        # Lambda saving the same portal again (each token refresh) skips the conditional put.
        self._listed: dict[str, str] = {}

    def get(self, member_id: str) -> Portal | None:
        try:
            item = self._model.get(portal_pk(member_id), PORTAL_SK, consistent_read=True)
        except self._model.DoesNotExist:
            return None
        return _to_portal(item, self.codec)

    def _item(self, portal: Portal) -> _PortalItem:
        gsi1pk, gsi1sk = token_index.index_keys(portal)
        return self._model(
            portal_pk(portal.member_id),
            PORTAL_SK,
            gsi1pk=gsi1pk,
            gsi1sk=gsi1sk,
            member_id=portal.member_id,
            domain=portal.domain,
            client_endpoint=portal.client_endpoint,
            server_endpoint=portal.server_endpoint or None,
            state=str(portal.state),
            token_state=str(portal.token_state),
            access_token=self.codec.seal(portal.member_id, "access_token", portal.access_token) or None,
            refresh_token=self.codec.seal(portal.member_id, "refresh_token", portal.refresh_token) or None,
            access_expires_at=portal.access_expires_at,
            application_token=hash_token(portal.application_token) or None,
            webhook_token=hash_token(portal.webhook_token) or None,
            scope=portal.scope or None,
            status=portal.status or None,
            user_id=portal.user_id or None,
            user_admin=portal.user_admin or None,
            language=portal.language or None,
            app_version=portal.app_version or None,
            installed_at=portal.installed_at,
            updated_at=portal.updated_at,
            refreshed_at=portal.refreshed_at,
            install_path=portal.install_path or None,
            capabilities=json.dumps(portal.capabilities, sort_keys=True) if portal.capabilities else None,
            token_state_reason=portal.token_state_reason or None,
            token_state_at=portal.token_state_at,
            refresh_attempts=portal.refresh_attempts,
            next_attempt_at=portal.next_attempt_at,
            schema=ITEM_SCHEMA,
        )

    def save(self, portal: Portal) -> Portal:
        if portal.newer_release:  # writing it back would downgrade what a newer release stored
            raise NewerItem(portal.member_id, portal.newer_release)
        item = self._item(portal)
        if portal.version:
            item.version = portal.version  # pynamodb saves only if the stored version still equals it
        save_versioned(item, portal.member_id)  # StaleWrite, or NewerItem over a newer release's record
        # Listed by domain (portals/directory.py): written only when new or the domain changed.
        if self._listed.get(portal.member_id) != portal.domain:
            self.directory.put(portal.member_id, portal.domain)
            if len(self._listed) >= _LISTED_MAX:
                self._listed.clear()
            self._listed[portal.member_id] = portal.domain
        # What get() would read back: the application and webhook tokens only as their hashes.
        return replace(
            portal,
            version=int(item.version or 0),
            application_token=hash_token(portal.application_token),
            webhook_token=hash_token(portal.webhook_token),
        )

    def get_many(self, member_ids: list[str]) -> dict[str, Portal]:
        """Portal records by member_id (BatchGetItem, 100 keys a call); missing ones are left out."""
        keys = [(portal_pk(m), PORTAL_SK) for m in dict.fromkeys(member_ids)]
        return {i.member_id: _to_portal(i, self.codec) for i in self._model.batch_get(keys)}

    def list_all(self, limit: int = 1000) -> list[Portal]:
        # Operator listing only (CLI); hot paths never scan.
        items = self._model.scan(self._model.sk == PORTAL_SK, limit=None)
        portals = [_to_portal(i, self.codec) for i in items]
        return sorted(portals, key=lambda p: p.domain)[:limit]

    def due_for_refresh(self, now: int, limit: int = 1000, age_s: int = REFRESH_KEEPALIVE_S) -> list[Portal]:
        """Portals whose keep-alive refresh or retry is due, read through the GSI (never a Scan)."""
        due = self.index_page(token_index.RETRY, token_index.upper_bound(now), limit).portals
        bound = token_index.upper_bound(now - age_s)
        return due + self.index_page(token_index.REFRESH, bound, limit).portals

    def index_page(
        self, partition: str, below: str | None, limit: int = 100, start_key: dict[str, Any] | None = None
    ) -> IndexPage:
        """One Query page of a token partition of gsi1 (sort keys below ``below``), never a Scan."""
        condition = self._model.gsi1sk < below if below is not None else None
        items = self._model.refresh_index.query(
            partition, condition, limit=limit, page_size=limit, last_evaluated_key=start_key
        )
        portals = [_to_portal(i, self.codec) for i in items]
        read = int(items.page_iter.total_scanned_count)
        nxt = items.last_evaluated_key
        return IndexPage(portals, dict(nxt) if nxt else None, read)

    def count_index(self, partition: str, below: str | None = None) -> int:
        """How many portals a token partition holds (below a sort key): a COUNT Query, no Scan."""
        condition = self._model.gsi1sk < below if below is not None else None
        return int(self._model.refresh_index.count(partition, condition))

    def listed_page(self, limit: int = 100, start_key: dict[str, Any] | None = None) -> IndexPage:
        """Every portal, whatever its tokens (OAuth, webhook, none): one page of the directory
        (portals/directory.py) and one BatchGetItem of those records; never a Scan."""
        page = self.directory.page(limit, start_key)
        found = self.get_many([e.member_id for e in page.entries])
        portals = [found[e.member_id] for e in page.entries if e.member_id in found]
        return IndexPage(portals, page.next_key, len(page.entries))

    def batch_put(self, portals: list[Portal]) -> None:
        """Seed many records at once (BatchWriteItem, no version check): benchmarks and migrations."""
        with self._model.batch_write() as batch:
            for portal in portals:
                batch.save(self._item(replace(portal, version=0)))
        self.directory.put_many([(p.member_id, p.domain) for p in portals])

    def delete(self, member_id: str) -> None:
        try:
            self._model(portal_pk(member_id), PORTAL_SK).delete()
        except DeleteError:
            raise
        self.directory.delete(member_id)
        self._listed.pop(member_id, None)


def portal_from_item(raw: dict[str, Any]) -> Portal:
    """A portal record from a raw item (DynamoDB JSON), token values left exactly as stored (sealed or
    hashed): the restore merge (b24core.portals.restore) reads both tables this way and opens nothing."""
    return _to_portal(_PortalItem.from_raw_data(raw), PlainCodec())
