"""The portal directory: every installed portal listed by domain through gsi1, so an operator can page
through 5,000+ portals and find one by its domain without a Scan.

Why a separate item (pk=PORTAL#member_id, sk=DIRECTORY) and not the portal record itself: the record's
gsi1 entry is taken by the token index (b24core.portals.token_index), and an item has one gsi1 entry.
The directory item is tiny (member_id, domain) and lives in the portal's partition, so an uninstall with
CLEAN that deletes the partition takes it along.

Why ONE gsi1 partition (``PORTALS``) and no sharding: the directory is written only when a portal is
created or its domain changes — ``put`` is conditional on the sort key being different, and a refused
condition writes nothing to the index — so the partition sees a handful of index writes per hour even
at a marketplace launch, far below a partition's 1,000 writes/s. Reads are what it serves: 5,000
entries of ~150 bytes are about 750 KB, one or two Query pages, well within one partition's 3,000
reads/s. Sharding (``PORTALS#n`` by a hash of member_id) would force every listing to merge n sorted
streams and a cursor per shard; it buys nothing until the directory is written thousands of times per
second, which installs never are.

The sort key is ``{domain lower-case}#{member_id}``: listings come out in domain order, an exact
domain is ``begins_with(domain#)`` and a domain prefix is ``begins_with(prefix)`` — both Queries.
A substring needs the whole partition read with a filter: still one Query stream, no Scan.

Portals saved before the directory existed have no entry: ``b24app portals reindex`` (the one
operator Scan, resumable by cursor, idempotent) writes theirs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pynamodb.attributes import UnicodeAttribute
from pynamodb.exceptions import PutError

from b24core.aws.dynamo import Gsi1, TableItem, bind_model
from b24core.portals.keys import DIRECTORY_PARTITION, DIRECTORY_SK, PORTAL_SK, portal_pk


def normalize_domain(text: str) -> str:
    """What the directory sorts and matches by: lower-case, no scheme, no path, no trailing dot."""
    value = text.strip().lower()
    for scheme in ("https://", "http://"):
        if value.startswith(scheme):
            value = value[len(scheme) :]
    return value.split("/", 1)[0].rstrip(".")


def sort_key(domain: str, member_id: str) -> str:
    return f"{normalize_domain(domain)}#{member_id}"


def encode_cursor(key: dict[str, Any] | None) -> str:
    """An opaque, URL-safe cursor for a page's LastEvaluatedKey ('' = no more pages)."""
    if not key:
        return ""
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise ValueError("not a cursor this command printed") from None
    if not isinstance(raw, dict):
        raise ValueError("not a cursor this command printed")
    return raw


@dataclass(frozen=True)
class Entry:
    member_id: str
    domain: str
    #: The index key of this entry: resuming after it continues the listing right behind it.
    key: dict[str, Any]


@dataclass(frozen=True)
class DirectoryPage:
    entries: list[Entry]
    next_key: dict[str, Any] | None


class _DirectoryItem(TableItem):
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    member_id = UnicodeAttribute()
    domain = UnicodeAttribute()
    directory_index = Gsi1()


class _AnyPortalItem(TableItem):
    """The portal record as the reindex Scan reads it: only what the directory needs."""

    member_id = UnicodeAttribute(null=True)
    domain = UnicodeAttribute(null=True)


@lru_cache(maxsize=8)
def _models(
    table_name: str, region: str, host: str | None
) -> tuple[type[_DirectoryItem], type[_AnyPortalItem]]:
    return bind_model(_DirectoryItem, table_name, region, host), bind_model(
        _AnyPortalItem, table_name, region, host
    )


def _index_key(item: _DirectoryItem) -> dict[str, Any]:
    return {
        "pk": {"S": item.pk},
        "sk": {"S": item.sk},
        "gsi1pk": {"S": item.gsi1pk},
        "gsi1sk": {"S": item.gsi1sk},
    }


class PortalDirectory:
    """The directory entries of one table (DynamoDB)."""

    def __init__(self, table_name: str, region: str, host: str | None = None) -> None:
        self._model, self._records = _models(table_name, region, host)

    def _item(self, member_id: str, domain: str) -> _DirectoryItem:
        return self._model(
            portal_pk(member_id),
            DIRECTORY_SK,
            gsi1pk=DIRECTORY_PARTITION,
            gsi1sk=sort_key(domain, member_id),
            member_id=member_id,
            domain=domain,
        )

    def put(self, member_id: str, domain: str) -> bool:
        """Write the entry unless it already says this; True when it was written (created or moved)."""
        item = self._item(member_id, domain)
        condition = self._model.gsi1sk.does_not_exist() | (self._model.gsi1sk != item.gsi1sk)
        try:
            item.save(condition=condition)
        except PutError as exc:
            if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put_many(self, rows: list[tuple[str, str]]) -> None:
        """Unconditional batch write (seeding benchmarks and migrations)."""
        with self._model.batch_write() as batch:
            for member_id, domain in rows:
                batch.save(self._item(member_id, domain))

    def delete(self, member_id: str) -> None:
        self._model(portal_pk(member_id), DIRECTORY_SK).delete()

    def page(
        self, limit: int = 100, start_key: dict[str, Any] | None = None, prefix: str = ""
    ) -> DirectoryPage:
        """One Query page in domain order (entries whose normalized domain starts with ``prefix``)."""
        condition = self._model.gsi1sk.startswith(prefix) if prefix else None
        items = self._model.directory_index.query(
            DIRECTORY_PARTITION, condition, limit=limit, page_size=limit, last_evaluated_key=start_key
        )
        entries = [Entry(i.member_id, i.domain, _index_key(i)) for i in items]
        nxt = items.last_evaluated_key
        return DirectoryPage(entries, dict(nxt) if nxt else None)

    def walk(
        self, start_key: dict[str, Any] | None = None, prefix: str = "", page_size: int = 500
    ) -> Iterator[Entry]:
        """Every entry from ``start_key`` on, in domain order, one Query page at a time."""
        key = start_key
        while True:
            page = self.page(page_size, key, prefix)
            yield from page.entries
            if page.next_key is None:
                return
            key = page.next_key

    def find(self, text: str, limit: int = 50) -> list[tuple[Entry, str]]:
        """Entries matching ``text``: (entry, "exact" | "prefix" | "substring"), best matches first.

        The exact domain and a domain prefix are Queries on the sort key; a substring is looked for
        only when neither matched, by reading the partition (small at this size, never a Scan)."""
        wanted = normalize_domain(text)
        if not wanted:
            return []
        exact = list(self.walk(prefix=f"{wanted}#", page_size=limit))[:limit]
        if exact:
            return [(e, "exact") for e in exact]
        prefixed = self.page(limit, prefix=wanted).entries
        if prefixed:
            return [(e, "prefix") for e in prefixed]
        found = []
        for entry in self.walk():
            if wanted in normalize_domain(entry.domain):
                found.append((entry, "substring"))
                if len(found) >= limit:
                    break
        return found

    def reindex_page(
        self, start_key: dict[str, Any] | None = None, page_size: int = 500
    ) -> tuple[int, int, dict[str, Any] | None]:
        """One Scan page of portal records, each given its directory entry: (records, written, next key).

        The operator backfill for portals saved before the directory existed: resumable from the key
        it returns, and idempotent (an entry that already says the same is not written again)."""
        items = self._records.scan(
            self._records.sk == PORTAL_SK, limit=page_size, page_size=page_size, last_evaluated_key=start_key
        )
        records = written = 0
        for item in items:
            if not item.member_id or item.domain is None:
                continue
            records += 1
            written += int(self.put(item.member_id, item.domain))
        nxt = items.last_evaluated_key
        return records, written, dict(nxt) if nxt else None
