"""The batch's guard ledger: each event of a handler not declared idempotent runs once, at two
DynamoDB requests per hundred events for the claims plus one per event for its completion.

Powertools' idempotency decorator guards one call at a time (an INPROGRESS put, then a COMPLETED
update: two sequential writes per event). The ledger keeps the same records and rules for a whole batch:

* **claim**, once per batch before any handler runs: conditional puts of INPROGRESS items in
  TransactWriteItems of up to 100 (condition: no item, an item past its ``ttl``, or an INPROGRESS item
  whose claim expired). A cancelled transaction names, per action, why: a failed condition comes back
  with the item (ALL_OLD), so COMPLETED means "a redelivery: answer it successful, run nothing" and a
  live INPROGRESS means "another worker has it: fail the record, SQS brings it back"; the others
  (conflicts, throttling, or fine but cancelled with the rest) are claimed again, a bounded number of
  times. A claim expires with the invocation (its remaining time), so a killed worker's events run
  again once it is surely gone.
* **complete**, per event right after its handlers returned: its ctx.storage writes and the change of
  its item to COMPLETED (``ttl`` 24 h) in ONE TransactWriteItems, so "effect written" and "guard
  completed" are atomic. Completion is not deferred to the batch's end on purpose: a handler's other
  effects (REST calls, anything outside ctx.storage) are only covered by its completed record, and a
  worker killed at the batch's end would otherwise run every earlier event of the batch again. An
  event with more writes than one transaction takes (``TRANSACT_LIMIT`` - 1) writes them with
  BatchWriteItem first and completes after: the older, weaker order (a failure between the two runs
  it again over its written effect).
* **release**, at the batch's end: the claims of events that did not complete (handler error, failed
  commit, sent back) are deleted, so their redelivery runs them at once.

Keys spread over IDEMPOTENCY_SHARDS partition keys by a hash of the event's message (the same on every
redelivery): pk = IDEMPOTENCY#event_worker#NN, sk = the hash.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from logging import INFO
from typing import Any, Protocol

from b24core.aws.batch_write import batch_write
from b24core.aws.logs import log_event, logger
from b24core.portals.keys import IDEMPOTENCY_SHARDS, idempotency_pk
from b24core.worker.handlers import Registry
from b24core.worker.plan import Plan

TTL_S = 24 * 3600  # a completed event is recognised for a day (its redeliveries come within minutes)
TRANSACT_LIMIT = 100  # actions per TransactWriteItems
ATTEMPTS = 4  # claim rounds for actions cancelled by a conflict or throttling
#: Without a Lambda context (tests, tools) a claim lasts Lambda's longest invocation.
DEFAULT_CLAIM_MS = 15 * 60 * 1000
INPROGRESS, COMPLETED = "INPROGRESS", "COMPLETED"
_NAMES = {"#ttl": "ttl", "#st": "status", "#ipx": "in_progress_expiry"}


class Claim(Enum):
    CLAIMED = "claimed"  # this worker runs the event's guarded handlers
    DONE = "done"  # completed before: a redelivery, its guarded handlers do not run again
    BUSY = "busy"  # another worker's live claim: the record fails and comes back
    FAILED = "failed"  # the ledger could not tell: the record fails and comes back


@dataclass(frozen=True)
class GuardKey:
    pk: str
    sk: str


def payload_shard(message: Any) -> int:
    """A stable shard of the guarded message (its canonical JSON's hash), uniform over the shards."""
    return int.from_bytes(_digest(message)[:4], "big") % IDEMPOTENCY_SHARDS


def guard_key(message: Any) -> GuardKey:
    return GuardKey(idempotency_pk(payload_shard(message)), _digest(message).hex())


def _digest(message: Any) -> bytes:
    canonical = json.dumps(message, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).digest()


class Ledger(Protocol):
    def claim(self, keys: Mapping[str, GuardKey], expires_ms: int) -> dict[str, Claim]: ...
    def complete(self, key: GuardKey, writes: list[dict[str, Any]]) -> None: ...
    def release(self, keys: list[GuardKey]) -> None: ...


class GuardLedger:
    """The ledger on the app's table (low-level DynamoDB client)."""

    def __init__(self, client: Any, table_name: str, ttl_s: int = TTL_S) -> None:
        self.client = client
        self.table_name = table_name
        self.ttl_s = ttl_s
        self.owner = uuid.uuid4().hex  # marks this process's claims (``by``); completion checks it

    def claim(self, keys: Mapping[str, GuardKey], expires_ms: int) -> dict[str, Claim]:
        """Claim each record's key (distinct keys); by record, what the ledger said."""
        out: dict[str, Claim] = {}
        pending = list(keys.items())
        for _ in range(ATTEMPTS):
            again: list[tuple[str, GuardKey]] = []
            for start in range(0, len(pending), TRANSACT_LIMIT):
                again += self._claim(pending[start : start + TRANSACT_LIMIT], expires_ms, out)
            pending = again
            if not pending:
                break
        out.update(dict.fromkeys((mid for mid, _ in pending), Claim.FAILED))
        return out

    def _claim(
        self, chunk: list[tuple[str, GuardKey]], expires_ms: int, out: dict[str, Claim]
    ) -> list[tuple[str, GuardKey]]:
        now = time.time()
        values = {
            ":ip": {"S": INPROGRESS},
            ":now": {"N": str(int(now))},
            ":now_ms": {"N": str(int(now * 1000))},
        }
        actions = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": {
                        "pk": {"S": key.pk},
                        "sk": {"S": key.sk},
                        "status": {"S": INPROGRESS},
                        "in_progress_expiry": {"N": str(expires_ms)},
                        "ttl": {"N": str(int(now) + self.ttl_s)},
                        "by": {"S": self.owner},
                    },
                    "ConditionExpression": "attribute_not_exists(pk) OR #ttl < :now"
                    " OR (#st = :ip AND #ipx < :now_ms)",
                    "ExpressionAttributeNames": _NAMES,
                    "ExpressionAttributeValues": values,
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
            for _, key in chunk
        ]
        try:
            self.client.transact_write_items(TransactItems=actions)
        except Exception as exc:
            reasons = _reasons(exc)
            if reasons is None:  # not a cancellation: DynamoDB did not answer; these records come back
                out.update(dict.fromkeys((mid for mid, _ in chunk), Claim.FAILED))
                return []
            again = []
            for (mid, key), reason in zip(chunk, reasons, strict=False):
                item = reason.get("Item") if reason.get("Code") == "ConditionalCheckFailed" else None
                if item is None:  # cancelled with the others, a conflict, throttled: claim it again
                    again.append((mid, key))
                else:
                    done = item.get("status", {}).get("S") == COMPLETED
                    out[mid] = Claim.DONE if done else Claim.BUSY
            return again
        out.update(dict.fromkeys((mid for mid, _ in chunk), Claim.CLAIMED))
        return []

    def complete(self, key: GuardKey, writes: list[dict[str, Any]]) -> None:
        """Mark the event completed together with its app writes (TransactWriteItems actions), at once.
        Raises when it did not happen (nothing of it is written then)."""
        mark = {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": {"S": key.pk}, "sk": {"S": key.sk}},
                "UpdateExpression": "SET #st = :done, #ttl = :ttl REMOVE #ipx",
                "ConditionExpression": "#by = :me",  # still this worker's claim
                "ExpressionAttributeNames": {
                    "#st": "status",
                    "#ttl": "ttl",
                    "#ipx": "in_progress_expiry",
                    "#by": "by",
                },
                "ExpressionAttributeValues": {
                    ":done": {"S": COMPLETED},
                    ":ttl": {"N": str(int(time.time()) + self.ttl_s)},
                    ":me": {"S": self.owner},
                },
            }
        }
        if not writes:  # nothing to write with it: one plain update (a transaction costs double)
            update = {k: v for k, v in mark["Update"].items() if k != "TableName"}
            self.client.update_item(TableName=self.table_name, **update)
            return
        for attempt in range(ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=[*writes, mark])
                return
            except Exception as exc:
                reasons = _reasons(exc)
                codes = {r.get("Code") for r in reasons or []}
                if reasons is None or attempt == ATTEMPTS - 1 or "ConditionalCheckFailed" in codes:
                    raise
                time.sleep(0.05 * 2**attempt)  # a conflict with another writer of the same item

    def release(self, keys: list[GuardKey]) -> None:
        """Delete these claims (this invocation's, still live: nobody else can hold them)."""
        deletes = [{"DeleteRequest": {"Key": {"pk": {"S": k.pk}, "sk": {"S": k.sk}}}} for k in keys]
        if deletes:
            batch_write(self.client, self.table_name, deletes)


def _reasons(exc: Exception) -> list[dict[str, Any]] | None:
    """A cancelled transaction's reasons, one per action in order; None for any other error."""
    response = getattr(exc, "response", None)
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    if not isinstance(response, dict) or error.get("Code") != "TransactionCanceledException":
        return None
    return list(response.get("CancellationReasons") or [])


class GuardBusy(RuntimeError):
    """The record's event is another worker's, or the ledger did not answer: SQS brings it back."""


@dataclass
class GuardBatch:
    """One batch's claims: which records run their guarded handlers, and the release at its end.
    Without a ledger (``None``) guarded handlers run unguarded."""

    ledger: Ledger | None = None
    keys: dict[str, GuardKey] = field(default_factory=dict)
    claims: dict[str, Claim] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)
    #: messageId -> why it fails (the batch's Plan.fail_reason: ``in_progress``, ``guard_unavailable``)
    fail_reason: dict[str, str] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        ledger: Ledger | None,
        messages: Mapping[str, Any],
        expires_ms: int,
        fail_reason: dict[str, str],
    ) -> tuple[GuardBatch, list[str]]:
        """Claim the records (messageId -> message) that will run guarded handlers. Also returns the
        records whose message repeats an earlier one of the batch: the first one stands for them."""
        if ledger is None or not messages:
            return cls(ledger, fail_reason=fail_reason), []
        keys: dict[str, GuardKey] = {}
        firsts: set[GuardKey] = set()
        repeats: list[str] = []
        for mid, message in messages.items():
            key = guard_key(message)
            if key in firsts:
                repeats.append(mid)
                continue
            firsts.add(key)
            keys[mid] = key
        try:
            claims = ledger.claim(keys, expires_ms)
        except Exception as exc:  # its records come back; nothing ran
            _warn("guard claims failed; events will be retried", exc)
            claims = dict.fromkeys(keys, Claim.FAILED)
        return cls(ledger, keys, claims, fail_reason=fail_reason), repeats

    def should_run(self, mid: str, member_id: str, event: str) -> bool:
        """True: run the record's guarded handlers; False: its event completed before (a redelivery).
        Raises GuardBusy when the record must come back."""
        if self.ledger is None:
            return True
        claim = self.claims.get(mid, Claim.FAILED)
        if claim is Claim.DONE:
            log_event(INFO, "event handled before", "dispatch", member_id, "duplicate", event=event)
        if claim is Claim.BUSY:
            self.fail_reason[mid] = "in_progress"
            raise GuardBusy("event is being handled by another worker; it will be retried")
        if claim is Claim.FAILED:
            self.fail_reason[mid] = "guard_unavailable"
            raise GuardBusy("event's guard could not be claimed; it will be retried")
        return claim is Claim.CLAIMED

    def complete(self, mid: str, writes: list[dict[str, Any]]) -> None:
        if self.ledger is not None:
            self.ledger.complete(self.keys[mid], writes)
            self.completed.add(mid)

    def release(self) -> None:
        """Delete the claims whose events did not complete; a failure only delays them (expiry)."""
        claimed = [mid for mid, claim in self.claims.items() if claim is Claim.CLAIMED]
        left = [self.keys[mid] for mid in claimed if mid not in self.completed]
        if self.ledger is None or not left:
            return
        try:
            self.ledger.release(left)
        except Exception as exc:
            _warn("guard claims not released; their events run once the claims expire", exc)


def open_batch(
    ledger: Ledger | None, plan: Plan, registry: Registry, records: list[dict[str, Any]], context: Any
) -> GuardBatch:
    """Step 1's last act: claim every record that will run a guarded handler, before any handler runs.
    A claim lasts the invocation's remaining time (the Lambda context), as Powertools' does."""
    messages: dict[str, Any] = {}
    for rec in records:
        mid = str(rec.get("messageId"))
        ev = plan.events.get(mid)
        if ev is None or mid in plan.skip or mid in plan.failed:
            continue
        if any(not reg.idempotent for reg in registry.handlers_for(ev.name)):
            messages[mid] = json.loads(str(rec.get("body")))  # the key: the same on every redelivery
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    lasts = int(remaining()) if callable(remaining) else DEFAULT_CLAIM_MS
    batch, repeats = GuardBatch.open(ledger, messages, int(time.time() * 1000) + lasts, plan.fail_reason)
    for mid in repeats:  # the same message twice in one batch: the first one runs it
        plan.skip[mid] = "duplicate"
    return batch


def _warn(message: str, exc: Exception) -> None:
    logger.warning(message, extra={"action": "dispatch", "reason": type(exc).__name__})


class InMemoryGuardLedger:
    """The same contract for unit tests: key -> status."""

    def __init__(self) -> None:
        self.items: dict[GuardKey, str] = {}
        self.completed_with: list[list[dict[str, Any]]] = []

    def claim(self, keys: Mapping[str, GuardKey], expires_ms: int) -> dict[str, Claim]:
        out: dict[str, Claim] = {}
        for mid, key in keys.items():
            status = self.items.get(key)
            out[mid] = {None: Claim.CLAIMED, COMPLETED: Claim.DONE}.get(status, Claim.BUSY)
            self.items.setdefault(key, INPROGRESS)
        return out

    def complete(self, key: GuardKey, writes: list[dict[str, Any]]) -> None:
        self.items[key] = COMPLETED
        self.completed_with.append(writes)

    def release(self, keys: list[GuardKey]) -> None:
        for key in keys:
            if self.items.get(key) == INPROGRESS:
                del self.items[key]
