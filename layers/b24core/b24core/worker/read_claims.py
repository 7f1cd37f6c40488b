"""Which worker is reading an object right now, so that a second worker does not buy the same read.

Two workers draining one portal's storm get batches that share objects (a deal changed twice lands in
both). The read marks (worker/read_marks.py) let a later batch skip an object an earlier one read, but
a mark is written only once its events were handled; until then a concurrent batch reads the object
again, and at a slow limit each such read costs the whole portal a request of its budget. So before a
`batch` request, a worker claims its objects on their read-mark items; an object another worker holds
is not read here: its event goes back to the queue for a few seconds, and on its return the holder's
mark covers it (skipped) or, when the change came after that read, it is read then.

Claims only save reads, they never decide what is handled: a claim lapses by itself (``until``), so a
worker that died holding one delays those events by at most the claim's life, and any failure to claim
reads the objects anyway. The holder's mark (an unconditional put of the whole item) ends its claims;
claims left by reads that were not marked are given back at the batch's end.

One TransactWriteItems per `batch` request of reads (up to 50 objects; a transaction takes 100), each
a conditional update: no live claim of another worker, and no mark of a read that covers the event (a
mark written since the batch looked at the marks: that event is skipped at once). When some are
refused, the transaction is cancelled with one reason per action, and the rest are claimed in a
second one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from b24core.aws.logs import logger
from b24core.portals.keys import portal_pk, read_sk
from b24core.worker.read_marks import MARGIN_S, TTL_S, ObjectKey, event_time

TRANSACTION_LIMIT = 100  # actions per TransactWriteItems
#: How long a claim outlives the wait for budget: the batch's handlers run and its marks are written.
CLAIM_HANDLING_S = 30.0
#: An event whose object another worker is reading comes back after that claim's time, within these.
CLAIMED_DELAY_S = (2, 30)
_ATTEMPTS = 3
Wanted = Mapping[ObjectKey, str]  # object -> the ``ts`` of the event its read is for
_FREE = "attribute_not_exists(cb) OR cb = :me OR cu < :now"


@dataclass(frozen=True)
class Refusal:
    """Why an object was not claimed: the other worker's claim runs ``left_s`` more seconds, and/or a
    read marked at ``read_at`` (portal time) may already cover the event."""

    left_s: float
    read_at: float | None

    @classmethod
    def of(cls, item: Mapping[str, Any], now: float) -> Refusal:
        until = item.get("cu", {}).get("N")
        at = item.get("t", {}).get("N")
        return cls(max(0.0, float(until) - now) if until else 0.0, float(at) if at else None)


Refused = dict[ObjectKey, Refusal]


class ReadClaims:
    """Claims of one worker invocation (``owner``) on a portal's objects."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.clock = clock
        self.owner = owner or uuid.uuid4().hex
        self.held: dict[str, set[ObjectKey]] = {}  # member_id -> objects this owner claimed

    def renew_owner(self) -> None:
        """A new invocation: a new owner, so claims a killed predecessor left are not mistaken for ours."""
        self.owner = uuid.uuid4().hex
        self.held = {}

    def take(self, member_id: str, wanted: Wanted, hold_s: float) -> Refused:
        """Claim the objects (each with its event's ``ts``) for ``hold_s`` seconds; returns those refused:
        another worker holds them, or a read marked since covers the event. Whatever fails here leaves
        every object to be read."""
        keys = list(wanted)
        refused: Refused = {}
        try:
            for start in range(0, len(keys), TRANSACTION_LIMIT):
                part = {k: wanted[k] for k in keys[start : start + TRANSACTION_LIMIT]}
                refused.update(self._take(member_id, part, hold_s))
        except Exception as exc:  # claims only save reads: without them, this worker reads everything
            _warn("read claims not taken", member_id, exc)
            return {}
        self.held.setdefault(member_id, set()).update(k for k in keys if k not in refused)
        return refused

    def _take(self, member_id: str, wanted: Wanted, hold_s: float) -> Refused:
        refused: Refused = {}
        pending = list(wanted)
        for _ in range(_ATTEMPTS):
            if not pending:
                break
            now = self.clock()
            actions = [self._claim_action(member_id, key, wanted[key], now, hold_s) for key in pending]
            try:
                self.client.transact_write_items(TransactItems=actions)
                return refused
            except Exception as exc:
                reasons = _reasons(exc)
                if reasons is None or len(reasons) != len(pending):
                    raise
            retry: list[ObjectKey] = []
            for key, reason in zip(pending, reasons, strict=True):
                if reason.get("Code") == "ConditionalCheckFailed":
                    refused[key] = Refusal.of(reason.get("Item") or {}, now)
                else:  # cancelled with the others, or a conflicting write: asked again
                    retry.append(key)
            pending = retry
        for key in pending:  # still conflicting: someone is writing the item now (a mark, a claim)
            refused[key] = Refusal(0.0, None)
        return refused

    def _claim_action(
        self, member_id: str, key: ObjectKey, ts: str, now: float, hold_s: float
    ) -> dict[str, Any]:
        """A conditional update: no live claim of another worker, and no mark that covers the event."""
        changed = event_time(ts)
        values = {
            ":me": {"S": self.owner},
            ":now": {"N": repr(now)},
            ":until": {"N": repr(now + hold_s)},
            ":ttl": {"N": str(int(now) + TTL_S)},
        }
        condition = _FREE
        if changed is not None:
            values[":need"] = {"N": repr(changed + 1 + MARGIN_S)}
            condition = f"({_FREE}) AND (attribute_not_exists(t) OR t < :need)"
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": self._key(member_id, key),
                "UpdateExpression": "SET cb = :me, cu = :until, #ttl = if_not_exists(#ttl, :ttl)",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#ttl": "ttl"},
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def release(self, member_id: str, keys: Iterable[ObjectKey]) -> None:
        """Give claims back (reads that did not happen, or were not marked); a claim another worker
        has taken since is left alone. Failures are logged: the claims lapse by themselves."""
        mine = self.held.get(member_id, set())
        keys = [k for k in dict.fromkeys(keys) if k in mine]
        if not keys:
            return
        values = {":me": {"S": self.owner}}
        try:
            for start in range(0, len(keys), TRANSACTION_LIMIT):
                part = keys[start : start + TRANSACTION_LIMIT]
                self.client.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self.table_name,
                                "Key": self._key(member_id, key),
                                "UpdateExpression": "REMOVE cb, cu",
                                "ConditionExpression": "cb = :me",
                                "ExpressionAttributeValues": values,
                            }
                        }
                        for key in part
                    ]
                )
        except Exception as exc:
            _warn("read claims not given back", member_id, exc)
        mine.difference_update(keys)

    def release_unmarked(self, marked: dict[str, set[ObjectKey]]) -> None:
        """At a batch's end: every claim not ended by a read mark is given back."""
        for member_id, held in list(self.held.items()):
            self.release(member_id, held - marked.get(member_id, set()))
        self.held = {}

    def _key(self, member_id: str, key: ObjectKey) -> dict[str, Any]:
        return {"pk": {"S": portal_pk(member_id)}, "sk": {"S": read_sk(*key)}}


def claimed_delay(left_s: float) -> int:
    """Seconds an event waits for another worker's read of its object (that claim's time left + 1)."""
    low, high = CLAIMED_DELAY_S
    return int(min(high, max(low, left_s + 1)))


def _reasons(exc: Exception) -> list[dict[str, Any]] | None:
    """The per-action reasons of a cancelled transaction, or None for any other error."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    if response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons = response.get("CancellationReasons")
    return list(reasons) if isinstance(reasons, list) else None


def _warn(message: str, member_id: str, exc: Exception) -> None:
    extra = {"action": "dispatch", "member_id": member_id, "reason": type(exc).__name__}
    logger.warning(message, extra=extra)
