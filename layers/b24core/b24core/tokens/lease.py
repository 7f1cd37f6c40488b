"""Leases: at most one holder of a named job at a time across every process, and never forever.

A lease is an item of the app's table (``pk=PORTAL#{member_id}, sk=LEASE#refresh`` for a portal's
token refresh; ``pk=SWEEP, sk=LEASE#sweep`` for the keep-alive sweep) taken with a conditional
PutItem: it succeeds only when no lease exists or the existing one has expired. A holder that crashes
simply stops renewing it; the next caller takes it over after ``expires_at``. ``ttl`` lets DynamoDB
delete abandoned lease items a day later.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError

from b24core.aws.dynamo import TableItem, bind_model
from b24core.portals.keys import REFRESH_LEASE_SK, SWEEP_LEASE_PK, SWEEP_LEASE_SK, portal_pk

_CLEANUP_AFTER_S = 24 * 3600


@dataclass(frozen=True)
class LeaseKey:
    pk: str
    sk: str

    @classmethod
    def refresh(cls, member_id: str) -> LeaseKey:
        return cls(portal_pk(member_id), REFRESH_LEASE_SK)

    @classmethod
    def sweep(cls) -> LeaseKey:
        return cls(SWEEP_LEASE_PK, SWEEP_LEASE_SK)


@dataclass(frozen=True)
class LeaseInfo:
    holder: str
    expires_at: float


class LeaseStore(Protocol):
    def acquire(self, key: LeaseKey, holder: str, ttl_s: float, now: float) -> bool:
        """Take the lease if it is free or expired at ``now``; True when ``holder`` has it."""
        ...

    def release(self, key: LeaseKey, holder: str) -> None:
        """Give the lease back (only if ``holder`` still has it)."""
        ...

    def peek(self, key: LeaseKey) -> LeaseInfo | None: ...


class InMemoryLeaseStore:
    """Same contract, for unit tests."""

    def __init__(self) -> None:
        self._leases: dict[LeaseKey, LeaseInfo] = {}
        self._lock = threading.Lock()
        self.acquired = 0

    def acquire(self, key: LeaseKey, holder: str, ttl_s: float, now: float) -> bool:
        with self._lock:
            current = self._leases.get(key)
            if current is not None and current.expires_at >= now and current.holder != holder:
                return False
            self._leases[key] = LeaseInfo(holder, now + ttl_s)
            self.acquired += 1
            return True

    def release(self, key: LeaseKey, holder: str) -> None:
        with self._lock:
            current = self._leases.get(key)
            if current is not None and current.holder == holder:
                del self._leases[key]

    def peek(self, key: LeaseKey) -> LeaseInfo | None:
        return self._leases.get(key)


class _LeaseItem(TableItem):
    holder = UnicodeAttribute()
    expires_at = NumberAttribute()
    ttl = NumberAttribute()


@lru_cache(maxsize=8)
def _lease_model(table_name: str, region: str, host: str | None) -> type[_LeaseItem]:
    return bind_model(_LeaseItem, table_name, region, host)


class DynamoLeaseStore:
    def __init__(self, table_name: str, region: str, host: str | None = None) -> None:
        self._model = _lease_model(table_name, region, host)

    def acquire(self, key: LeaseKey, holder: str, ttl_s: float, now: float) -> bool:
        m = self._model
        expires = round(now + ttl_s, 3)
        item = m(key.pk, key.sk, holder=holder, expires_at=expires, ttl=int(expires) + _CLEANUP_AFTER_S)
        try:
            item.save(condition=m.pk.does_not_exist() | (m.expires_at < round(now, 3)) | (m.holder == holder))
        except PutError as exc:
            if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release(self, key: LeaseKey, holder: str) -> None:
        m = self._model
        try:
            m(key.pk, key.sk).delete(condition=m.holder == holder)
        except DeleteError as exc:
            if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
                raise

    def peek(self, key: LeaseKey) -> LeaseInfo | None:
        try:
            item = self._model.get(key.pk, key.sk, consistent_read=True)
        except self._model.DoesNotExist:
            return None
        return LeaseInfo(item.holder, float(item.expires_at))
