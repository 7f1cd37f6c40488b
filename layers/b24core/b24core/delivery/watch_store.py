"""The delivery watchdog's state per portal (sk=WATCHDOG): its cursor, what it judged, the IDs it knows
and its last verdict, in one versioned item beside the portal's record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from b24core.capabilities.isolation import QueueReach
from b24core.portals.keys import WATCH_SK
from b24core.portals.state_items import DynamoStateStore
from b24core.portals.versioned import InMemoryStateStore


# ---------------------------------------------------------------- state
@dataclass(frozen=True)
class WatchState:
    member_id: str
    #: The modification time (the portal's format) of the newest judged change; "" before the first check.
    cursor: str = ""
    #: "ID@MODIFIED" of the changes judged at the cursor's second (listed again by ">=").
    judged: tuple[str, ...] = ()
    #: IDs the app is known to have heard of (those existing at the first check, and those whose changes
    #: were delivered): seeded into polling at a switch, so it sends their changes as updates and its
    #: first reconciliation finds those deleted meanwhile. An object first seen undelivered stays out: polling
    #: sends it as an add.
    known_ids: tuple[int, ...] = ()
    checked_at: int = 0
    verdict: str = str(QueueReach.UNKNOWN)
    verdict_at: int = 0
    version: int = 0


class WatchStore(Protocol):
    def get(self, member_id: str) -> WatchState | None: ...

    def save(self, state: WatchState) -> WatchState: ...


class InMemoryWatchStore(InMemoryStateStore[WatchState]):
    pass


_FIELDS = ("cursor", "judged", "known_ids", "checked_at", "verdict", "verdict_at")


def _encode(state: WatchState) -> dict[str, Any]:
    body = {name: getattr(state, name) for name in _FIELDS}
    body["judged"], body["known_ids"] = list(state.judged), list(state.known_ids)
    return body


def _decode(member_id: str, raw: dict[str, Any], version: int) -> WatchState:
    return WatchState(
        member_id,
        cursor=str(raw.get("cursor") or ""),
        judged=tuple(str(k) for k in raw.get("judged") or ()),
        known_ids=tuple(int(i) for i in raw.get("known_ids") or ()),
        checked_at=int(raw.get("checked_at") or 0),
        verdict=str(raw.get("verdict") or QueueReach.UNKNOWN),
        verdict_at=int(raw.get("verdict_at") or 0),
        version=version,
    )


class DynamoWatchStore(DynamoStateStore[WatchState]):
    def __init__(self, table_name: str, region: str, host: str | None = None) -> None:
        super().__init__(WATCH_SK, _encode, _decode, table_name, region, host)
