"""What reached the worker, per object: the evidence the change audit compares a portal's changes with.

For each object of a listable kind (the manifest's ``objects``) the worker keeps the newest change
time (the event's ``ts``, in the portal's clock) it was handed — from any source (``any_at``: nothing
to send again) and from a real event (``event_at``: online, offline queue or outgoing webhook, not the
bundle's own audit or polling: proof that the platform delivers) — and whether a delete arrived.

One item per object (pk=PORTAL#member_id, sk=SEEN#kind#id, with the marks' time to live), written in
one BatchWriteItem per worker batch, unconditionally: a lost race leaves an older mark, which only
makes the audit send that object once more, never miss a change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from b24core.portals.keys import seen_sk
from b24core.worker.read_marks import MarkTable, _warn

#: Sources that are the bundle's own findings, not the platform's delivery.
BY_BUNDLE = frozenset({"audit", "poll"})


@dataclass(frozen=True)
class Seen:
    any_at: float = 0.0
    event_at: float = 0.0
    gone_at: float = 0.0

    def merged(self, other: Seen) -> Seen:
        return Seen(
            max(self.any_at, other.any_at),
            max(self.event_at, other.event_at),
            max(self.gone_at, other.gone_at),
        )

    @classmethod
    def of(cls, at: float, source: str, deleted: bool) -> Seen:
        return cls(at, 0.0 if source in BY_BUNDLE else at, at if deleted else 0.0)


SeenKey = tuple[str, int]  # (object kind, object id)


class SeenMarks(MarkTable):
    def seen(self, member_id: str, kind: str, ids: Iterable[int]) -> dict[int, Seen]:
        """The marks of these objects (those with none are left out). Raises when DynamoDB fails: the
        audit must not take "no answer" for "no event"."""
        wanted = {seen_sk(kind, i): i for i in ids}
        out: dict[int, Seen] = {}
        for sk, item in self.get_many(member_id, wanted, "a, e, g").items():
            if sk in wanted:
                out[wanted[sk]] = Seen(*(float(item[k]["N"]) if k in item else 0.0 for k in ("a", "e", "g")))
        return out

    def mark(self, member_id: str, marks: Mapping[SeenKey, Seen]) -> None:
        items: dict[str, dict[str, Any]] = {}
        for (kind, object_id), seen in marks.items():
            attrs = {"a": {"N": repr(seen.any_at)}}
            if seen.event_at:
                attrs["e"] = {"N": repr(seen.event_at)}
            if seen.gone_at:
                attrs["g"] = {"N": repr(seen.gone_at)}
            items[seen_sk(kind, object_id)] = attrs
        try:
            self.put_many(member_id, items)
        except Exception as exc:  # the audit then sends these objects once more: a cost, not a loss
            _warn("seen marks not written", member_id, exc)


class InMemorySeenMarks:
    """The same contract for unit tests."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, SeenKey], Seen] = {}

    def seen(self, member_id: str, kind: str, ids: Iterable[int]) -> dict[int, Seen]:
        return {i: self.items[(member_id, (kind, i))] for i in ids if (member_id, (kind, i)) in self.items}

    def mark(self, member_id: str, marks: Mapping[SeenKey, Seen]) -> None:
        for key, seen in marks.items():
            self.items[(member_id, key)] = seen
