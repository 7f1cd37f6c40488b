"""The change audit's state per portal (sk=AUDIT): a cursor per kind of object, where a reconciliation
stands, and what the last audits found — one versioned item beside the portal's record, indexed by when
the next audit is due (gsi1 partition DELIVERY#audit), so the schedule never scans.

The item stays small whatever the portal's size: the IDs the audit knows live in their own shards
(delivery/known_ids.py) and the boundary of judged changes is capped (``BOUNDARY_MAX``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from b24core.portals.keys import AUDIT_PARTITION, AUDIT_SK
from b24core.portals.state_items import DynamoStateStore
from b24core.portals.versioned import InMemoryStateStore

#: Judged changes remembered inside the overlap (``ID@MODIFIED``, ~30 bytes each). Beyond it, a change
#: listed again is told from a new one by its seen mark: at worst it is sent once more, never lost.
BOUNDARY_MAX = 2000


@dataclass(frozen=True)
class Feed:
    """Where the audit of one kind of object stands on one portal."""

    cursor: str = ""  # the newest judged modification time, in the portal's own format
    boundary: tuple[str, ...] = ()  # "ID@MODIFIED" judged at or just below the cursor (in the overlap)
    settled_at: int = 0  # the portal's time of the last complete listing (0: the last one was cut short)
    reconcile_from: int = -1  # the next ID a reconciliation under way lists from; -1: none under way
    reconcile_started: int = 0
    reconciled_at: int = 0  # when the last complete reconciliation began


@dataclass(frozen=True)
class AuditState:
    member_id: str
    feeds: dict[str, Feed] = field(default_factory=dict)
    active: bool = True
    next_at: int = 0
    last_at: int = 0
    #: Consecutive audits that found changes with no event: the route's evidence of a blocked delivery.
    strikes: int = 0
    missed_total: int = 0
    last_missed_at: int = 0
    last: dict[str, Any] = field(default_factory=dict)  # the last audit's counts, for operators
    version: int = 0

    def index_keys(self) -> tuple[str | None, str | None]:
        if not self.active:
            return None, None
        return AUDIT_PARTITION, f"{max(0, int(self.next_at)):012d}#{self.member_id}"

    def public_view(self) -> dict[str, Any]:
        return {
            "next_at": self.next_at,
            "last_at": self.last_at,
            "strikes": self.strikes,
            "missed_total": self.missed_total,
            "last_missed_at": self.last_missed_at,
            "last": self.last,
            "kinds": {
                kind: {
                    "cursor": f.cursor,
                    "reconciling_from": f.reconcile_from if f.reconcile_from >= 0 else None,
                    "reconciled_at": f.reconciled_at,
                }
                for kind, f in sorted(self.feeds.items())
            },
        }


class AuditStore(Protocol):
    def get(self, member_id: str) -> AuditState | None: ...

    def save(self, state: AuditState) -> AuditState: ...

    def due(self, partition: str, now: int, limit: int = 100) -> list[str]: ...


class InMemoryAuditStore(InMemoryStateStore[AuditState]):
    def due(self, partition: str, now: int, limit: int = 100) -> list[str]:
        bound = f"{now + 1:012d}"
        rows = sorted(
            (sk, s.member_id)
            for s in list(self._items.values())
            for pk, sk in [s.index_keys()]
            if pk == partition and sk is not None and sk < bound
        )
        return [m for _, m in rows][:limit]


def _encode(state: AuditState) -> dict[str, Any]:
    return {
        "feeds": {
            kind: {
                "cursor": f.cursor,
                "boundary": list(f.boundary),
                "settled_at": f.settled_at,
                "reconcile_from": f.reconcile_from,
                "reconcile_started": f.reconcile_started,
                "reconciled_at": f.reconciled_at,
            }
            for kind, f in state.feeds.items()
        },
        "active": state.active,
        "next_at": state.next_at,
        "last_at": state.last_at,
        "strikes": state.strikes,
        "missed_total": state.missed_total,
        "last_missed_at": state.last_missed_at,
        "last": state.last,
    }


def _decode(member_id: str, raw: dict[str, Any], version: int) -> AuditState:
    feeds = {
        str(kind): Feed(
            cursor=str(f.get("cursor") or ""),
            boundary=tuple(str(b) for b in f.get("boundary") or ()),
            settled_at=int(f.get("settled_at") or 0),
            reconcile_from=int(f.get("reconcile_from", -1)),
            reconcile_started=int(f.get("reconcile_started") or 0),
            reconciled_at=int(f.get("reconciled_at") or 0),
        )
        for kind, f in (raw.get("feeds") or {}).items()
        if isinstance(f, dict)
    }
    last = raw.get("last")
    return AuditState(
        member_id,
        feeds,
        active=bool(raw.get("active", True)),
        next_at=int(raw.get("next_at") or 0),
        last_at=int(raw.get("last_at") or 0),
        strikes=int(raw.get("strikes") or 0),
        missed_total=int(raw.get("missed_total") or 0),
        last_missed_at=int(raw.get("last_missed_at") or 0),
        last=last if isinstance(last, dict) else {},
        version=version,
    )


def schedule_audit(store: AuditStore, member_id: str, at: int) -> None:
    """Put a portal on the audit's schedule (install, connect, re-check), its cursors kept."""
    from b24core.portals.versioned import update

    def started(s: AuditState | None) -> AuditState | None:
        s = s or AuditState(member_id)
        if s.active and s.next_at:
            return None
        return replace(s, active=True, next_at=at)

    update(lambda: store.get(member_id), store.save, started, member_id)


class DynamoAuditStore(DynamoStateStore[AuditState]):
    def __init__(self, table_name: str, region: str, host: str | None = None) -> None:
        super().__init__(AUDIT_SK, _encode, _decode, table_name, region, host, index=AuditState.index_keys)
