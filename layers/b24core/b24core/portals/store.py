"""Where portal records live: a small interface, an in-memory one for unit tests, DynamoDB for real.

Writes are optimistic: every save names the version it read, so two Lambdas can never silently
overwrite each other's tokens (one of them gets ``StaleWrite`` and re-reads).
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from functools import lru_cache
from typing import Any, Protocol

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.exceptions import DeleteError, PutError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from b24core.portals.model import Portal
from b24core.portals.states import PortalState, TokenState


class StaleWrite(RuntimeError):
    """Somebody else saved the portal since we read it; re-read and decide again."""


class PortalStore(Protocol):
    def get(self, member_id: str) -> Portal | None: ...

    def save(self, portal: Portal) -> Portal:
        """Create (version 0) or update (the version read); return the stored value."""
        ...

    def list_all(self, limit: int = 1000) -> list[Portal]: ...


class InMemoryPortalStore:
    """Same contract as the DynamoDB store, for pure unit tests."""

    def __init__(self) -> None:
        self._items: dict[str, Portal] = {}
        self._lock = threading.Lock()

    def get(self, member_id: str) -> Portal | None:
        return self._items.get(member_id)

    def save(self, portal: Portal) -> Portal:
        with self._lock:
            current = self._items.get(portal.member_id)
            if (current.version if current else 0) != portal.version:
                raise StaleWrite(portal.member_id)
            stored = replace(portal, version=portal.version + 1)
            self._items[portal.member_id] = stored
            return stored

    def list_all(self, limit: int = 1000) -> list[Portal]:
        return sorted(self._items.values(), key=lambda p: p.domain)[:limit]


PORTAL_SK = "PORTAL"
REFRESH_INDEX_PK = "REFRESH"


def portal_pk(member_id: str) -> str:
    return f"PORTAL#{member_id}"


class _RefreshIndex(GlobalSecondaryIndex["_PortalItem"]):  # type: ignore[no-untyped-call]
    """gsi1: portals with a live refresh token, sorted by when their keep-alive refresh is due."""

    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class _PortalItem(Model):
    """Single-table layout: pk=PORTAL#member_id, sk=PORTAL; gsi1 lists portals by refresh due time."""

    class Meta:
        table_name = "unset"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
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
    scope = UnicodeAttribute(null=True)
    status = UnicodeAttribute(null=True)
    user_id = UnicodeAttribute(null=True)
    language = UnicodeAttribute(null=True)
    app_version = UnicodeAttribute(null=True)
    installed_at = NumberAttribute(default=0)
    updated_at = NumberAttribute(default=0)
    refreshed_at = NumberAttribute(default=0)
    install_path = UnicodeAttribute(null=True)
    capabilities = UnicodeAttribute(null=True)
    version = VersionAttribute()
    refresh_index = _RefreshIndex()


@lru_cache(maxsize=8)
def _portal_model(table_name: str, region: str, host: str | None) -> type[_PortalItem]:
    meta = type(
        "Meta",
        (),
        {
            "table_name": table_name,
            "region": region,
            "host": host,
            "connect_timeout_seconds": 3,
            "read_timeout_seconds": 5,
            "max_retry_attempts": 3,
        },
    )
    return type("PortalItem", (_PortalItem,), {"Meta": meta})


def _to_portal(item: _PortalItem) -> Portal:
    caps: dict[str, Any] = json.loads(item.capabilities) if item.capabilities else {}
    return Portal(
        member_id=item.member_id,
        domain=item.domain,
        client_endpoint=item.client_endpoint,
        server_endpoint=item.server_endpoint or "",
        state=PortalState(item.state),
        token_state=TokenState(item.token_state),
        access_token=item.access_token or "",
        refresh_token=item.refresh_token or "",
        access_expires_at=int(item.access_expires_at or 0),
        application_token=item.application_token or "",
        scope=item.scope or "",
        status=item.status or "",
        user_id=item.user_id or "",
        language=item.language or "",
        app_version=item.app_version or "",
        installed_at=int(item.installed_at or 0),
        updated_at=int(item.updated_at or 0),
        refreshed_at=int(item.refreshed_at or 0),
        install_path=item.install_path or "",
        capabilities=caps,
        version=int(item.version or 0),
    )


class DynamoPortalStore:
    """Portal records in the app's DynamoDB table (template.yaml: AppTable)."""

    def __init__(self, table_name: str, region: str, host: str | None = None) -> None:
        self._model = _portal_model(table_name, region, host)

    def get(self, member_id: str) -> Portal | None:
        try:
            item = self._model.get(portal_pk(member_id), PORTAL_SK, consistent_read=True)
        except self._model.DoesNotExist:
            return None
        return _to_portal(item)

    def save(self, portal: Portal) -> Portal:
        refreshable = portal.state == PortalState.ACTIVE and portal.token_state in (
            TokenState.ACTIVE,
            TokenState.REFRESH_FAILING,
        )
        item = self._model(
            portal_pk(portal.member_id),
            PORTAL_SK,
            gsi1pk=REFRESH_INDEX_PK if refreshable and portal.refresh_token else None,
            gsi1sk=f"{portal.refresh_due_at:012d}#{portal.member_id}" if refreshable else None,
            member_id=portal.member_id,
            domain=portal.domain,
            client_endpoint=portal.client_endpoint,
            server_endpoint=portal.server_endpoint or None,
            state=str(portal.state),
            token_state=str(portal.token_state),
            access_token=portal.access_token or None,
            refresh_token=portal.refresh_token or None,
            access_expires_at=portal.access_expires_at,
            application_token=portal.application_token or None,
            scope=portal.scope or None,
            status=portal.status or None,
            user_id=portal.user_id or None,
            language=portal.language or None,
            app_version=portal.app_version or None,
            installed_at=portal.installed_at,
            updated_at=portal.updated_at,
            refreshed_at=portal.refreshed_at,
            install_path=portal.install_path or None,
            capabilities=json.dumps(portal.capabilities, sort_keys=True) if portal.capabilities else None,
        )
        if portal.version:
            item.version = portal.version  # pynamodb saves only if the stored version still equals it
        try:
            item.save()
        except PutError as exc:
            if _is_conditional_failure(exc):
                raise StaleWrite(portal.member_id) from None
            raise
        return replace(portal, version=int(item.version or 0))

    def list_all(self, limit: int = 1000) -> list[Portal]:
        # Operator listing only (CLI); hot paths never scan.
        items = self._model.scan(self._model.sk == PORTAL_SK, limit=None)
        portals = [_to_portal(i) for i in items]
        return sorted(portals, key=lambda p: p.domain)[:limit]

    def due_for_refresh(self, now: int, limit: int = 1000) -> list[Portal]:
        """Portals whose keep-alive refresh is due, read through the GSI (never a Scan)."""
        items = self._model.refresh_index.query(
            REFRESH_INDEX_PK, self._model.gsi1sk < f"{now:012d}~", limit=limit
        )
        return [_to_portal(i) for i in items]

    def delete(self, member_id: str) -> None:
        try:
            self._model(portal_pk(member_id), PORTAL_SK).delete()
        except DeleteError:
            raise


def _is_conditional_failure(exc: Exception) -> bool:
    cause = getattr(exc, "cause_response_code", None)
    return cause == "ConditionalCheckFailedException"
