"""Merging a table restored to a point in time with the live one, so no spent refresh token comes back.

DynamoDB restores a point in time (PITR) into a NEW table: a snapshot of time T. The live table moved
on after T, and Bitrix24 refresh tokens are single-use: every portal refreshed after T has a spent
refresh token in the snapshot, so running the stack on the snapshot as it is would send nearly every
portal to reauth_required. ``merge`` copies one table (FROM) into the other (INTO), item by item:

* an item INTO lacks is copied from FROM: what a restore is for, items lost from the live table;
* an item INTO has stays as it is: INTO is the table being kept (the live one, or the restored one
  chosen over a damaged live one) ...
* ... except a portal record's token fields (``TOKEN_FIELDS``: the pair and when it was issued, the
  token and portal states, the application_token, whose pair it is, where the portal is). They are one
  group, taken whole from whichever record is newest on ``token_clock``: the time the pair was issued
  first, so an older refresh token never replaces a newer one, whichever way the merge runs;
* a portal uninstalled after the other table's snapshot stays uninstalled: the uninstall is newer on
  the token clock (the record's ``updated_at`` once it is deleted), so its record wins the group, and
  nothing else of that portal is copied. When the newer uninstall comes from FROM, the items it purged
  are deleted from INTO as well (``purged``);
* leases and the event worker's idempotency records are never copied: they are about work in flight
  at T, and a lease brought back would only hold a portal's refreshes up until it expires.

The same rule serves both directions (docs/restore.md): ``FROM=restored INTO=live`` brings lost items
back into the running table; ``FROM=live INTO=restored`` makes the restored table current before the
stack is pointed at it (template.yaml: ExistingTableName). Every write is conditional on what was read
(``attribute_not_exists``, or the record's version, which the stack's own saves check too), so a merge
racing the live stack overwrites nothing it did not see, a merge that stopped halfway is finished by
running it again, and a second run changes nothing. Values are copied as stored (sealed, hashed): the
merge needs no key, opens nothing, and its report names member_ids and counts only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from b24core.portals import token_index
from b24core.portals.keys import IDEMPOTENCY_PK, PORTAL_SK, SWEEP_LEASE_PK
from b24core.portals.states import PortalState, TokenState
from b24core.portals.store import portal_from_item

Item = dict[str, Any]  # a raw item in DynamoDB JSON ({"attr": {"S": ...}})

#: The attributes of a portal record that move together: the token pair, when it was issued, the
#: states it decides, and what the same install or refresh wrote with it.
TOKEN_FIELDS = (
    "access_token",
    "refresh_token",
    "access_expires_at",
    "refreshed_at",
    "installed_at",
    "application_token",
    "state",
    "token_state",
    "token_state_reason",
    "token_state_at",
    "refresh_attempts",
    "next_attempt_at",
    "user_id",
    "user_admin",
    "domain",
    "client_endpoint",
    "server_endpoint",
    "scope",
)
_WRITE_ATTEMPTS = 5
_GET_BATCH = 100  # BatchGetItem's limit
_IDEMPOTENCY = IDEMPOTENCY_PK.split("#")[0] + "#"  # every function's once-per-event records


class RestoreError(RuntimeError):
    """The merge cannot start (same table twice, a table missing or of another shape)."""


@dataclass
class MergeReport:
    """What a merge did (or, with dry_run, would do): counts and member_ids, never a value."""

    dry_run: bool
    scanned: int = 0
    restored: int = 0  # items INTO lacked, copied from FROM
    kept: int = 0  # items INTO already had: left as they are
    tokens_kept_newer: int = 0  # portal records whose newer token fields in INTO beat FROM's older ones
    tokens_taken: int = 0  # portal records that took FROM's newer token fields
    skipped: int = 0  # leases, idempotency records, items of portals that stay deleted
    purged: int = 0  # items INTO had of a portal uninstalled (CLEAN) in FROM after INTO's snapshot
    portals: dict[str, list[str]] = field(default_factory=dict)  # action -> member_ids

    def note(self, action: str, member_id: str) -> None:
        self.portals.setdefault(action, []).append(member_id)

    def counts(self) -> dict[str, int]:
        return {
            "scanned": self.scanned,
            "restored": self.restored,
            "kept": self.kept,
            "tokens_kept_newer": self.tokens_kept_newer,
            "tokens_taken": self.tokens_taken,
            "skipped": self.skipped,
            "purged": self.purged,
        }


# ---------------------------------------------------------------- the rule (pure)
def _s(item: Item, name: str) -> str:
    value = item.get(name) or {}
    return str(value.get("S", ""))


def _n(item: Item, name: str) -> int:
    value = item.get(name) or {}
    try:
        return int(value.get("N", "0"))
    except ValueError:
        return 0


def is_record(item: Item) -> bool:
    return _s(item, "sk") == PORTAL_SK and _s(item, "pk").startswith("PORTAL#")


def is_gone(record: Item) -> bool:
    """An uninstalled portal's record (kept as a tombstone; only a verified reinstall revives it)."""
    return _s(record, "state") == PortalState.DELETED or _s(record, "token_state") == TokenState.UNINSTALLED


def is_transient(item: Item) -> bool:
    """Work in flight at the snapshot's time, never worth bringing back."""
    pk, sk = _s(item, "pk"), _s(item, "sk")
    return sk.startswith("LEASE#") or pk == SWEEP_LEASE_PK or pk.startswith(_IDEMPOTENCY)


def token_clock(record: Item) -> tuple[int, int, int]:
    """How new a record's token fields are: when its pair was issued (every install, refresh and
    adopted pair writes ``refreshed_at``; refreshes of one portal are single-flight and a minimum
    interval apart), then when its token state last changed (an uninstall counts at its
    ``updated_at``), then its version (every save of the record increments it)."""
    issued = max(_n(record, "refreshed_at"), _n(record, "installed_at"))
    changed = _n(record, "token_state_at")
    if is_gone(record):
        changed = max(changed, _n(record, "updated_at"))
    return issued, changed, _n(record, "version")


def _token_fields(record: Item) -> dict[str, Any]:
    return {k: record[k] for k in TOKEN_FIELDS if k in record}


def merge_record(source: Item, target: Item) -> Item | None:
    """INTO's record with FROM's token fields when those are newer; None when INTO's stays as it is
    (its token fields are the same or newer). The result's version is past both, so a later merge in
    either direction sees it as the newest, and its gsi1 keys follow its token state."""
    if _token_fields(source) == _token_fields(target) or token_clock(source) <= token_clock(target):
        return None
    merged = {k: v for k, v in target.items() if k not in TOKEN_FIELDS}
    merged.update(_token_fields(source))
    merged["updated_at"] = {"N": str(max(_n(source, "updated_at"), _n(target, "updated_at")))}
    merged["version"] = {"N": str(max(_n(source, "version"), _n(target, "version")) + 1)}
    merged.pop("gsi1pk", None)
    merged.pop("gsi1sk", None)
    gsi1pk, gsi1sk = token_index.index_keys(portal_from_item(merged))
    if gsi1pk is not None and gsi1sk is not None:
        merged["gsi1pk"], merged["gsi1sk"] = {"S": gsi1pk}, {"S": gsi1sk}
    return merged


# ---------------------------------------------------------------- the tables
def _key(item: Item) -> Item:
    return {"pk": item["pk"], "sk": item["sk"]}


def _key_text(item: Item) -> tuple[str, str]:
    return _s(item, "pk"), _s(item, "sk")


def _conditional_failed(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return bool(response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class _Tables:
    def __init__(self, db: Any, source: str, target: str, dry_run: bool) -> None:
        self.db, self.source, self.target, self.dry_run = db, source, target, dry_run

    def scan(self, table: str, records: bool) -> Iterator[list[Item]]:
        """Pages of portal records (records=True) or of every other item."""
        op = "=" if records else "<>"
        kwargs: dict[str, Any] = {
            "TableName": table,
            "FilterExpression": f"sk {op} :record",
            "ExpressionAttributeValues": {":record": {"S": PORTAL_SK}},
            "ConsistentRead": True,
        }
        while True:
            page = self.db.scan(**kwargs)
            yield list(page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def partition(self, table: str, pk: str) -> list[Item]:
        kwargs: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        items: list[Item] = []
        while True:
            page = self.db.query(**kwargs)
            items += page.get("Items", [])
            if not page.get("LastEvaluatedKey"):
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def get(self, key: Item) -> Item | None:
        found = self.db.get_item(TableName=self.target, Key=key, ConsistentRead=True).get("Item")
        return dict(found) if found else None

    def fetch(self, keys: list[Item], keys_only: bool = False) -> dict[tuple[str, str], Item]:
        """INTO's items of ``keys`` that exist (BatchGetItem, unprocessed keys asked again)."""
        found: dict[tuple[str, str], Item] = {}
        for start in range(0, len(keys), _GET_BATCH):
            ask: dict[str, Any] = {"Keys": keys[start : start + _GET_BATCH], "ConsistentRead": True}
            if keys_only:
                ask["ProjectionExpression"] = "pk, sk"
            request: dict[str, Any] = {self.target: ask}
            while request:
                answer = self.db.batch_get_item(RequestItems=request)
                found |= {_key_text(i): dict(i) for i in answer.get("Responses", {}).get(self.target, [])}
                request = answer.get("UnprocessedKeys") or {}
        return found

    def put(self, item: Item, condition: str, values: Item | None = None) -> bool:
        """Write ``item`` into INTO if ``condition`` holds; False when it did not (someone wrote)."""
        if self.dry_run:
            return True
        kwargs: dict[str, Any] = {"TableName": self.target, "Item": item, "ConditionExpression": condition}
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self.db.put_item(**kwargs)
        except Exception as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def delete(self, item: Item) -> None:
        if not self.dry_run:
            self.db.delete_item(TableName=self.target, Key=_key(item))


# ---------------------------------------------------------------- the merge
def check_tables(db: Any, source: str, target: str) -> None:
    """Both tables exist, differ and have the app table's keys: else a clear error, nothing written."""
    if source == target:
        raise RestoreError("--from and --into name the same table")
    for name in (source, target):
        try:
            table = db.describe_table(TableName=name)["Table"]
        except Exception as exc:
            raise RestoreError(f"cannot read table {name!r} ({type(exc).__name__})") from None
        keys = {k["AttributeName"]: k["KeyType"] for k in table.get("KeySchema", [])}
        if keys != {"pk": "HASH", "sk": "RANGE"}:
            raise RestoreError(f"table {name!r} is not an app table (its keys are not pk/sk)")


def merge(db: Any, source: str, target: str, dry_run: bool = False) -> MergeReport:
    """Merge table ``source`` into table ``target`` by the module's rule; see MergeReport."""
    check_tables(db, source, target)
    tables = _Tables(db, source, target, dry_run)
    report = MergeReport(dry_run=dry_run)
    gone: dict[str, bool] = {}  # pk -> the portal's record (as merged) is a deleted portal's
    purge: list[str] = []
    # Records first, so each portal's fate is known before its other items are looked at.
    for page in tables.scan(source, records=True):
        report.scanned += len(page)
        current = tables.fetch([_key(r) for r in page]) if page else {}
        for record in page:
            _merge_one_record(tables, record, current.get(_key_text(record)), report, gone, purge)
    for page in tables.scan(source, records=False):
        report.scanned += len(page)
        _copy_items(tables, page, report, gone)
    for pk in purge:
        _purge(tables, pk, report)
    return report


def _merge_one_record(
    tables: _Tables,
    record: Item,
    current: Item | None,
    report: MergeReport,
    gone: dict[str, bool],
    purge: list[str],
) -> None:
    """Merge one portal record; ``current`` is INTO's as read with its page, read again after a
    conditional write found that someone saved it since."""
    pk, member_id = _s(record, "pk"), _s(record, "member_id")
    for attempt in range(_WRITE_ATTEMPTS):
        if attempt:
            current = tables.get(_key(record))
        if current is None:
            if tables.put(record, "attribute_not_exists(pk)"):
                report.restored += 1
                report.note("restored", member_id)
                gone[pk] = is_gone(record)
                return
            continue  # the stack created it meanwhile: merge with what it wrote
        merged = merge_record(record, current)
        if merged is None:
            report.kept += 1
            if _token_fields(record) != _token_fields(current):
                report.tokens_kept_newer += 1
            gone[pk] = is_gone(current)
            return
        read = {":read": current["version"]} if "version" in current else None
        if tables.put(merged, "version = :read" if read else "attribute_not_exists(version)", read):
            report.tokens_taken += 1
            report.note("tokens_taken", member_id)
            gone[pk] = is_gone(merged)
            if gone[pk] and not is_gone(current):
                purge.append(pk)  # uninstalled in FROM after INTO's snapshot
            return
    raise RestoreError(f"portal {member_id} kept changing during the merge; run it again")


def _copy_items(tables: _Tables, page: list[Item], report: MergeReport, gone: dict[str, bool]) -> None:
    wanted: list[Item] = []
    for item in page:
        pk = _s(item, "pk")
        if is_transient(item) or (pk.startswith("PORTAL#") and _stays_deleted(tables, pk, gone)):
            report.skipped += 1
        else:
            wanted.append(item)
    present = tables.fetch([_key(i) for i in wanted], keys_only=True) if wanted else {}
    for item in wanted:
        if _key_text(item) in present or not tables.put(item, "attribute_not_exists(pk)"):
            report.kept += 1
        else:
            report.restored += 1


def _stays_deleted(tables: _Tables, pk: str, gone: dict[str, bool]) -> bool:
    """True when the portal of partition ``pk`` ends the merge uninstalled (its items stay away)."""
    if pk not in gone:  # FROM has no record of it: INTO's record decides
        record = tables.get({"pk": {"S": pk}, "sk": {"S": PORTAL_SK}})
        gone[pk] = record is not None and is_gone(record)
    return gone[pk]


def _purge(tables: _Tables, pk: str, report: MergeReport) -> None:
    """Delete what INTO still has of a portal that FROM uninstalled (and purged) after INTO's time."""
    kept = {_key_text(i) for i in tables.partition(tables.source, pk)}
    for item in tables.partition(tables.target, pk):
        if _s(item, "sk") != PORTAL_SK and _key_text(item) not in kept:
            tables.delete(item)
            report.purged += 1
