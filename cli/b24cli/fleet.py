"""Which portals a fleet command works on: the portal directory (b24core.portals.directory) read page
by page in domain order, each page's records fetched in one BatchGetItem and filtered here.

Never a Scan: 5,000 portals are a few Query pages plus a BatchGetItem per 100 of them. Filters on
what only the record knows (state, missing feature) are applied after the read, so a page of output
may take several pages of the directory; the cursor always points right behind the last portal
examined, so ``--cursor`` continues exactly where the output stopped.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from b24cli.target import Target, TargetError

MODES = ("online", "pull", "lossless", "webhook", "polling", "none")


@dataclass(frozen=True)
class Filter:
    state: str | None = None
    token_state: str | None = None
    mode: str | None = None
    domain_contains: str | None = None
    missing: str | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> Filter:
        return cls(
            getattr(args, "state", None),
            getattr(args, "token_state", None),
            getattr(args, "mode", None),
            (getattr(args, "domain_contains", None) or "").lower() or None,
            getattr(args, "missing", None),
        )

    @property
    def any(self) -> bool:
        return any((self.state, self.token_state, self.mode, self.domain_contains, self.missing))

    def matches(self, view: dict[str, Any], mode: str) -> bool:
        from b24cli.capabilities_cmd import is_missing

        if self.state and view["state"] != self.state:
            return False
        if self.token_state and view["token_state"] != self.token_state:
            return False
        if self.mode and mode != self.mode:
            return False
        if self.domain_contains and self.domain_contains not in str(view["domain"]).lower():
            return False
        return not (self.missing and not is_missing(view.get("capabilities") or {}, self.missing))


def add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", choices=["new", "active", "blocked", "deleted"], help="portal state")
    parser.add_argument(
        "--token-state",
        choices=["active", "refresh_failing", "reauth_required", "payment_required", "uninstalled"],
    )
    parser.add_argument("--mode", choices=MODES, help="delivery mode (none: not probed yet)")
    parser.add_argument("--domain-contains", metavar="TEXT", help="domain contains TEXT")
    parser.add_argument("--missing", metavar="FEATURE", help="only portals where FEATURE is missing")


class Selection:
    """The portals matching ``flt``, from ``cursor`` on, at most ``limit`` (0: all); iterate it for
    public views, then read ``next_cursor`` ('' when the listing is complete)."""

    def __init__(self, target: Target, flt: Filter, limit: int = 0, cursor: str | None = None) -> None:
        from b24core.portals.directory import decode_cursor
        from b24core.portals.store import DynamoPortalStore

        self.target, self.flt, self.limit = target, flt, limit
        try:
            self.start_key = decode_cursor(cursor)
        except ValueError as exc:
            raise TargetError(f"--cursor: {exc}") from None
        self.store = DynamoPortalStore(target.table_name, target.region, target.dynamodb_endpoint)
        self.next_cursor = ""
        self.examined = 0

    def _modes(self, member_ids: list[str]) -> dict[str, str]:
        if not self.flt.mode:
            return {}
        from b24cli.delivery_cmd import delivery_store

        store = delivery_store(self.target)
        with ThreadPoolExecutor(max_workers=8) as pool:  # one GetItem each: the items have no batch read
            states = dict(zip(member_ids, pool.map(store.get, member_ids), strict=True))
        return {m: str(s.mode) if s is not None else "none" for m, s in states.items()}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from b24core.portals.directory import encode_cursor

        page_size = min(500, max(self.limit, 100)) if self.limit else 500
        key, found = self.start_key, 0
        while True:
            page = self.store.directory.page(page_size, key)
            ids = [e.member_id for e in page.entries]
            portals = self.store.get_many(ids) if ids else {}
            modes = self._modes(ids)
            for i, entry in enumerate(page.entries):
                self.examined += 1
                portal = portals.get(entry.member_id)
                if portal is None:  # a directory entry whose record is gone: nothing to show
                    continue
                view = portal.public_view()
                if not self.flt.matches(view, modes.get(entry.member_id, "")):
                    continue
                found += 1
                yield view
                if self.limit and found >= self.limit:
                    more = i < len(page.entries) - 1 or page.next_key is not None
                    self.next_cursor = encode_cursor(entry.key) if more else ""
                    return
            if page.next_key is None:
                return
            key = page.next_key
