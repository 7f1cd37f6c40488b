"""The capability check's own items beside the portal record, in the same table.

* history: one item per change of what a portal has (pk=PORTAL#member_id, sk=CAPHIST#time#n), so an
  operator can see when telephony appeared or a method vanished;
* the re-check schedule: one item per portal that lacked something (pk=PORTAL#member_id,
  sk=RECHECK), listed by due time through gsi1 under gsi1pk=RECHECK — the scheduled re-check
  queries that index and never scans;
* the manifest rollout: one item (pk=MANIFEST, sk=ROLLOUT) saying how far marking every portal due
  for a changed manifest got (b24core.capabilities.rollout);
* ``purge``: everything the app keeps for a portal except the portal record (ONAPPUNINSTALL with
  data[CLEAN]=1): history, schedule, and the app's own data (``ctx.storage``); the record's directory
  entry stays with it.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from functools import lru_cache
from typing import Any, Protocol

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from b24core.aws.dynamo import Gsi1, TableItem, bind_model
from b24core.portals.keys import (
    DIRECTORY_SK,
    HISTORY_PREFIX,
    PORTAL_SK,
    RECHECK_INDEX_PK,
    RECHECK_SK,
    ROLLOUT_PK,
    ROLLOUT_SK,
    portal_pk,
)

HISTORY_TTL_S = 2 * 365 * 24 * 3600
#: What a purge keeps: the portal record and its directory entry (an uninstalled portal stays listed).
_KEPT = (PORTAL_SK, DIRECTORY_SK)


class CapabilityStore(Protocol):
    def add_history(self, member_id: str, at: int, entry: dict[str, Any]) -> None: ...

    def history(self, member_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """Newest first."""
        ...

    def schedule_recheck(self, member_id: str, due_at: int | None) -> None:
        """Set when the portal is asked again; ``None`` takes it off the schedule."""
        ...

    def recheck_due_at(self, member_id: str) -> int | None: ...

    def due_rechecks(self, now: int, limit: int = 100) -> list[str]:
        """member_ids whose re-check is due, earliest first."""
        ...

    def purge(self, member_id: str) -> int:
        """Delete every item of the portal except its record; return how many."""
        ...

    def rollout(self) -> dict[str, Any]:
        """The manifest rollout's progress ({} before the first)."""
        ...

    def save_rollout(self, state: dict[str, Any]) -> None: ...


class InMemoryCapabilityStore:
    """Same contract, for unit tests."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._seq = 0

    def add_history(self, member_id: str, at: int, entry: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            self.items[(portal_pk(member_id), f"{HISTORY_PREFIX}{at:012d}#{self._seq:06d}")] = dict(entry)

    def history(self, member_id: str, limit: int = 20) -> list[dict[str, Any]]:
        pk = portal_pk(member_id)
        keys = sorted((k for k in self.items if k[0] == pk and k[1].startswith(HISTORY_PREFIX)), reverse=True)
        return [dict(self.items[k]) for k in keys[:limit]]

    def schedule_recheck(self, member_id: str, due_at: int | None) -> None:
        key = (portal_pk(member_id), RECHECK_SK)
        with self._lock:
            if due_at is None:
                self.items.pop(key, None)
            else:
                self.items[key] = {"member_id": member_id, "due_at": int(due_at)}

    def recheck_due_at(self, member_id: str) -> int | None:
        item = self.items.get((portal_pk(member_id), RECHECK_SK))
        return int(item["due_at"]) if item else None

    def due_rechecks(self, now: int, limit: int = 100) -> list[str]:
        due = sorted(
            (v["due_at"], v["member_id"])
            for k, v in self.items.items()
            if k[1] == RECHECK_SK and v["due_at"] <= now
        )
        return [m for _, m in due[:limit]]

    def rollout(self) -> dict[str, Any]:
        return dict(self.items.get((ROLLOUT_PK, ROLLOUT_SK)) or {})

    def save_rollout(self, state: dict[str, Any]) -> None:
        self.items[(ROLLOUT_PK, ROLLOUT_SK)] = dict(state)

    def purge(self, member_id: str) -> int:
        pk = portal_pk(member_id)
        with self._lock:
            doomed = [k for k in self.items if k[0] == pk and k[1] not in _KEPT]
            for k in doomed:
                del self.items[k]
        return len(doomed)


# ---------------------------------------------------------------- DynamoDB
class _HistoryItem(TableItem):
    at = NumberAttribute()
    entry = UnicodeAttribute()
    ttl = NumberAttribute(null=True)


class _RolloutItem(TableItem):
    state = UnicodeAttribute()


class _RecheckItem(TableItem):
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    member_id = UnicodeAttribute()
    due_at = NumberAttribute()
    recheck_index = Gsi1()


@lru_cache(maxsize=24)
def _model(base: type[Model], table_name: str, region: str, host: str | None) -> Any:
    return bind_model(base, table_name, region, host)


class DynamoCapabilityStore:
    def __init__(self, table_name: str, region: str, host: str | None = None) -> None:
        self._keys = _model(TableItem, table_name, region, host)
        self._history = _model(_HistoryItem, table_name, region, host)
        self._recheck = _model(_RecheckItem, table_name, region, host)
        self._rollout = _model(_RolloutItem, table_name, region, host)

    def rollout(self) -> dict[str, Any]:
        try:
            item = self._rollout.get(ROLLOUT_PK, ROLLOUT_SK, consistent_read=True)
        except self._rollout.DoesNotExist:
            return {}
        state: dict[str, Any] = json.loads(item.state)
        return state

    def save_rollout(self, state: dict[str, Any]) -> None:
        self._rollout(ROLLOUT_PK, ROLLOUT_SK, state=json.dumps(state, sort_keys=True)).save()

    def add_history(self, member_id: str, at: int, entry: dict[str, Any]) -> None:
        # The writer's nanoseconds keep two entries of the same second in order (newest first on read).
        self._history(
            portal_pk(member_id),
            f"{HISTORY_PREFIX}{at:012d}#{time.time_ns():020d}{secrets.token_hex(2)}",
            at=at,
            entry=json.dumps(entry, sort_keys=True, ensure_ascii=False),
            ttl=at + HISTORY_TTL_S,
        ).save()

    def history(self, member_id: str, limit: int = 20) -> list[dict[str, Any]]:
        items = self._history.query(
            portal_pk(member_id),
            self._history.sk.startswith(HISTORY_PREFIX),
            scan_index_forward=False,
            limit=limit,
        )
        return [json.loads(i.entry) for i in items]

    def schedule_recheck(self, member_id: str, due_at: int | None) -> None:
        if due_at is None:
            self._keys(portal_pk(member_id), RECHECK_SK).delete()
            return
        self._recheck(
            portal_pk(member_id),
            RECHECK_SK,
            gsi1pk=RECHECK_INDEX_PK,
            gsi1sk=f"{int(due_at):012d}#{member_id}",
            member_id=member_id,
            due_at=int(due_at),
        ).save()

    def recheck_due_at(self, member_id: str) -> int | None:
        try:
            item = self._recheck.get(portal_pk(member_id), RECHECK_SK, consistent_read=True)
        except self._recheck.DoesNotExist:
            return None
        return int(item.due_at)

    def due_rechecks(self, now: int, limit: int = 100) -> list[str]:
        items = self._recheck.recheck_index.query(
            RECHECK_INDEX_PK, self._recheck.gsi1sk < f"{now + 1:012d}", limit=limit
        )
        return [str(i.member_id) for i in items]

    def purge(self, member_id: str) -> int:
        doomed = [
            i for i in self._keys.query(portal_pk(member_id), consistent_read=True) if i.sk not in _KEPT
        ]
        with self._keys.batch_write() as batch:
            for item in doomed:
                batch.delete(item)
        return len(doomed)
