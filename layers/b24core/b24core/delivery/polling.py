"""Change polling: events for a webhook-connected portal whose changes cannot come as events.

A box cut off from the cloud event queue sends no event, not even an outgoing webhook's. For each
feature whose events can be polled (``POLLABLE``), a scheduled round lists what changed since the
portal's cursor and feeds the same worker path (SQS ``QueuedEvent``, source ``poll``) as if the events
had arrived:

* the list asks ``DATE_MODIFY >= cursor - overlap`` in ``DATE_MODIFY, ID`` order. The portal's clock
  has whole seconds, so rows at the boundary come again: each handed-over row is remembered as
  ``ID@DATE_MODIFY`` while it is inside the overlap, and not sent twice;
* the cursor moves only past rows SQS accepted, so nothing is lost when SQS refuses some;
* a round reads at most ``max_pages`` pages (each one request of the portal's REST budget);
* deletions cannot be seen by modification time: a slower reconciliation lists every ID
  (``>ID`` + ``start=-1``) and sends a delete event for each known ID that is gone.

State per portal: one item beside its record (pk=PORTAL#member_id, sk=POLL), saved optimistically.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from logging import INFO
from pathlib import Path
from typing import Any, Protocol

from b24core.aws.logs import log_event
from b24core.bitrix.values import is_digits
from b24core.events.message import QueuedEvent
from b24core.portals.keys import POLL_SK
from b24core.portals.state_items import DynamoStateStore
from b24core.portals.versioned import InMemoryStateStore
from b24core.tokens.client import PortalClient

OPEN = "!"
PAGE = 50


@dataclass(frozen=True)
class PollSpec:
    """One pollable kind of object: how it is listed by modification time, and the events a change
    stands for (from delivery/poll_specs.json, which the layer ships as data)."""

    kind: str
    list_method: str
    add: str
    update: str
    delete: str
    modified: str = "DATE_MODIFY"  # the filter/order field of the modification time
    id: str = "ID"  # the filter/order field of the ID
    row_modified: str = ""  # the same fields as rows carry them (tasks answer camelCase)
    row_id: str = ""
    result_key: str = ""  # rows under result[result_key] (tasks) instead of result itself
    event_fields: str = "FIELDS"  # where an event of this kind names the object (tasks: FIELDS_AFTER)

    @property
    def events(self) -> tuple[str, str, str]:
        return (self.add, self.update, self.delete)

    def rows(self, result: Any) -> list[dict[str, Any]]:
        page = result.get(self.result_key) if self.result_key and isinstance(result, dict) else result
        return [r for r in page if isinstance(r, dict)] if isinstance(page, list) else []

    def row_id_of(self, row: dict[str, Any]) -> int | None:
        value = row.get(self.row_id or self.id)
        return int(str(value)) if is_digits(value) else None

    def changes(self, result: Any) -> list[tuple[str, int, str]]:
        """A page's rows as (``ID@MODIFIED`` key, ID, modification time); rows without an ID dropped."""
        out = []
        for row in self.rows(result):
            object_id = self.row_id_of(row)
            if object_id is not None:
                modified = self.row_modified_of(row)
                out.append((f"{object_id}@{modified}", object_id, modified))
        return out

    def ids_after(self, last: int) -> dict[str, Any]:
        """One page of every ID, fast: ``>ID`` and ``start=-1`` (settings/performance/huge-data.md)."""
        return {"order": {self.id: "ASC"}, "filter": {f">{self.id}": last}, "select": [self.id], "start": -1}

    def row_modified_of(self, row: dict[str, Any]) -> str:
        return str(row.get(self.row_modified or self.modified) or "")


def _load_specs() -> dict[str, PollSpec]:
    raw = json.loads((Path(__file__).with_name("poll_specs.json")).read_text(encoding="utf-8"))
    return {
        kind: PollSpec(
            kind=kind,
            list_method=spec["list"],
            **{k: v for k, v in spec.items() if k not in ("list",)},
        )
        for kind, spec in raw["kinds"].items()
    }


#: Every documented pollable kind; a portal polls those whose events its app handles.
POLLABLE: dict[str, PollSpec] = _load_specs()


def specs_for(events: set[str]) -> list[PollSpec]:
    """The kinds whose events are among ``events`` (the app's), in the catalog's order."""
    return [spec for spec in POLLABLE.values() if set(spec.events) & events]


@dataclass(frozen=True)
class Cursor:
    """Where polling of one kind stands on one portal."""

    modified: str = ""  # the newest DATE_MODIFY handed over (the portal's own format)
    boundary: tuple[str, ...] = ()  # "ID@DATE_MODIFY" handed over, still inside the overlap
    known_ids: tuple[int, ...] = ()
    reconciled_at: int = 0


@dataclass(frozen=True)
class PollState:
    member_id: str
    cursors: dict[str, Cursor] = field(default_factory=dict)
    version: int = 0


class PollStore(Protocol):
    def get(self, member_id: str) -> PollState | None: ...

    def save(self, state: PollState) -> PollState: ...


class InMemoryPollStore(InMemoryStateStore[PollState]):
    pass


def _encode(state: PollState) -> dict[str, Any]:
    return {
        "cursors": {
            name: {
                "modified": c.modified,
                "boundary": list(c.boundary),
                "known_ids": list(c.known_ids),
                "reconciled_at": c.reconciled_at,
            }
            for name, c in state.cursors.items()
        }
    }


def _decode(member_id: str, raw: dict[str, Any], version: int) -> PollState:
    cursors = {
        name: Cursor(
            modified=str(c.get("modified") or ""),
            boundary=tuple(str(b) for b in c.get("boundary") or ()),
            known_ids=tuple(int(i) for i in c.get("known_ids") or ()),
            reconciled_at=int(c.get("reconciled_at") or 0),
        )
        for name, c in (raw.get("cursors") or {}).items()
    }
    return PollState(member_id, cursors, version)


class DynamoPollStore(DynamoStateStore[PollState]):
    def __init__(self, table_name: str, region: str, host: str | None = None) -> None:
        super().__init__(POLL_SK, _encode, _decode, table_name, region, host)


# ---------------------------------------------------------------- one round
def _minus(stamp: str, seconds: int) -> str:
    """``stamp`` moved back by ``seconds``, in the portal's own format (its offset kept)."""
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return (moment - timedelta(seconds=seconds)).isoformat(timespec="seconds")


def _later(a: str, b: str) -> bool:
    try:
        return datetime.fromisoformat(a) > datetime.fromisoformat(b)
    except ValueError:
        return a > b


@dataclass
class RoundResult:
    sent: dict[str, int] = field(default_factory=dict)  # event -> count
    pages: int = 0
    reconciled: bool = False
    incomplete: bool = False  # SQS refused some, or the page cap stopped the round

    def add(self, event: str) -> None:
        self.sent[event] = self.sent.get(event, 0) + 1


Sink = Callable[[dict[str, QueuedEvent]], set[str]]


@dataclass
class ChangePoller:
    store: PollStore
    sink: Sink  # sends messages by key, returns the keys SQS accepted
    overlap_s: int = 60
    reconcile_every_s: int = 3600
    max_pages: int = 10
    clock: Callable[[], float] = time.time
    #: Called before every request with its method: takes the portal's shared REST budget (or raises).
    spend: Callable[[str], None] = lambda method: None

    def poll(self, client: PortalClient, wanted_events: set[str]) -> RoundResult:
        portal = client.portal
        state = self.store.get(portal.member_id) or PollState(portal.member_id)
        result = RoundResult()
        cursors = dict(state.cursors)
        for spec in specs_for(wanted_events):
            name = spec.kind
            cursor = cursors.get(name, Cursor())
            cursor = self._changes(client, spec, cursor, wanted_events, result)
            now = int(self.clock())
            if spec.delete in wanted_events and now - cursor.reconciled_at >= self.reconcile_every_s:
                cursor = self._reconcile(client, spec, cursor, result, now)
            cursors[name] = cursor
        self.store.save(replace(state, cursors=cursors))
        log_event(
            INFO,
            "changes polled",
            "poll",
            portal.member_id,
            sent=result.sent,
            pages=result.pages,
            reconciled=result.reconciled,
            incomplete=result.incomplete,
        )
        return result

    def _message(self, client: PortalClient, spec: PollSpec, event: str, object_id: int) -> QueuedEvent:
        now = int(self.clock())
        return QueuedEvent(
            event=event,
            member_id=client.portal.member_id,
            domain=client.portal.domain,
            data={spec.event_fields: {"ID": str(object_id)}},
            ts=str(now),
            source="poll",
            received_at=now,
        )

    def _changes(
        self, client: PortalClient, spec: PollSpec, cursor: Cursor, wanted: set[str], result: RoundResult
    ) -> Cursor:
        params: dict[str, Any] = {
            "order": {spec.modified: "ASC", spec.id: "ASC"},
            "select": [spec.id, spec.modified],
        }
        if cursor.modified:
            params["filter"] = {f">={spec.modified}": _minus(cursor.modified, self.overlap_s)}
        # A row handed over while its second was still running on the portal ("open", marked "!") may
        # have changed again within that second: it is sent once more; a "closed" one never again.
        seen = {b for b in cursor.boundary if not b.endswith(OPEN)}
        known = set(cursor.known_ids)
        portal_now = ""
        rows: list[tuple[str, int, str]] = []  # (key, id, modified) in order
        start = 0
        useful = 0  # pages that brought something new: the cap counts only these, so a crowded
        while True:  # overlap window (rows already handed over) cannot pin the cursor
            if useful >= self.max_pages:
                result.incomplete = True
                break
            self.spend(spec.list_method)
            answer = client.call_raw(spec.list_method, {**params, "start": start})
            result.pages += 1
            portal_now = portal_now or str((answer.time or {}).get("date_start") or "")
            before = len(rows)
            for key, object_id, modified in spec.changes(answer.result):
                if key not in seen:
                    rows.append((key, object_id, modified))
                    seen.add(key)
            useful += len(rows) > before
            if answer.next is None or answer.next <= start:
                break
            start = answer.next
        messages: dict[str, QueuedEvent] = {}
        for key, object_id, _modified in rows:
            event = spec.add if object_id not in known and spec.add in wanted else spec.update
            if event in wanted:
                messages[key] = self._message(client, spec, event, object_id)
        accepted = self.sink(messages) if messages else set()
        handed: list[tuple[str, int, str]] = []
        for row in rows:  # in modification order: stop at the first row SQS did not take
            if row[0] in messages and row[0] not in accepted:
                result.incomplete = True
                break
            handed.append(row)
            if row[0] in messages:
                result.add(messages[row[0]].event)
        newest = cursor.modified
        for _key, _id, modified in handed:
            if modified and (not newest or _later(modified, newest)):
                newest = modified
        floor = _minus(newest, self.overlap_s) if newest else ""
        marked = [r[0] if portal_now and _later(portal_now, r[2]) else r[0] + OPEN for r in handed]
        redone = {m.rstrip(OPEN) for m in marked}
        boundary = [
            b
            for b in (*(b for b in cursor.boundary if b.rstrip(OPEN) not in redone), *marked)
            if not floor or not _later(floor, b.split("@", 1)[1].rstrip(OPEN))
        ]
        return replace(
            cursor,
            modified=newest,
            boundary=tuple(dict.fromkeys(boundary)),
            known_ids=tuple(sorted(known | {r[1] for r in handed})),
        )

    def _reconcile(
        self, client: PortalClient, spec: PollSpec, cursor: Cursor, result: RoundResult, now: int
    ) -> Cursor:
        present: set[int] = set()
        last = 0
        while True:  # every ID, fast: ">ID" + start=-1 (settings/performance/huge-data.md)
            self.spend(spec.list_method)
            page = client.call(
                spec.list_method,
                {
                    "order": {spec.id: "ASC"},
                    "filter": {f">{spec.id}": last},
                    "select": [spec.id],
                    "start": -1,
                },
            )
            result.pages += 1
            ids = [i for i in map(spec.row_id_of, spec.rows(page)) if i is not None]
            present.update(ids)
            if len(ids) < PAGE or max(ids) <= last:
                break
            last = max(ids)
        gone = sorted(set(cursor.known_ids) - present)
        messages = {f"del{i}": self._message(client, spec, spec.delete, i) for i in gone}
        accepted = self.sink(messages) if messages else set()
        kept_back = {i for i in gone if f"del{i}" not in accepted}
        if kept_back:
            result.incomplete = True
        for _ in range(len(gone) - len(kept_back)):
            result.add(spec.delete)
        result.reconciled = True
        return replace(cursor, known_ids=tuple(sorted(present | kept_back)), reconciled_at=now)


__all__ = [
    "POLLABLE",
    "ChangePoller",
    "Cursor",
    "DynamoPollStore",
    "InMemoryPollStore",
    "PollSpec",
    "PollState",
    "PollStore",
    "RoundResult",
    "specs_for",
]
