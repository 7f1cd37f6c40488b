"""``b24app portals list|find|reindex``: the fleet's portals through the portal directory (gsi1), paged,
exported as JSON or CSV — public views only, so never a token value."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from b24cli import capabilities_cmd
from b24cli.fleet import Filter, Selection, add_filters
from b24cli.target import TargetError, find_target

CSV_COLUMNS = (
    "member_id",
    "domain",
    "state",
    "token_state",
    "app_version",
    "installed_at",
    "refreshed_at",
    "install_path",
    "features",
)


def _features(view: dict[str, Any]) -> str:
    return capabilities_cmd.features_line(view.get("capabilities") or {})


def _row(view: dict[str, Any]) -> str:
    return (
        f"{view['member_id']:34} {view['domain'][:32]:32} {view['state']:8} {view['token_state']:16} "
        f"{_features(view)}"
    )


def _header() -> str:
    return f"{'MEMBER_ID':34} {'DOMAIN':32} {'STATE':8} {'TOKENS':16} FEATURES"


def cmd_list(args: argparse.Namespace) -> int:
    flt = Filter.of(args)
    selection = Selection(find_target(args.stack), flt, 0 if args.all else args.limit, args.cursor)
    count = 0
    if args.json:
        print(json.dumps(list(selection), indent=2, ensure_ascii=False))
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for view in selection:
            writer.writerow([_features(view) if c == "features" else view.get(c, "") for c in CSV_COLUMNS])
    else:
        for view in selection:  # streamed: --all prints as the pages come
            if not count:
                print(_header())
            print(_row(view))
            count += 1
        if not count:
            print(
                f"no portal lacks {args.missing}"
                if args.missing
                else "no portals match"
                if flt.any
                else "no portals installed"
            )
    if selection.next_cursor:
        print(f"more: b24app portals list --cursor {selection.next_cursor} (or --all)", file=sys.stderr)
    return 0


def cmd_find(args: argparse.Namespace) -> int:
    """By member_id (a GetItem), else by domain: exact, then prefix, then substring (the directory)."""
    target = find_target(args.stack)
    selection = Selection(target, Filter())
    store = selection.store
    found: list[tuple[dict[str, Any], str]] = []
    by_id = store.get(args.text.strip())
    if by_id is not None:
        found.append((by_id.public_view(), "member_id"))
    else:
        matches = store.directory.find(args.text, args.limit)
        portals = store.get_many([e.member_id for e, _ in matches]) if matches else {}
        found = [(portals[e.member_id].public_view(), how) for e, how in matches if e.member_id in portals]
    if args.json:
        print(json.dumps([{**view, "match": how} for view, how in found], indent=2, ensure_ascii=False))
        return 0 if found else 1
    if not found:
        print(f"no portal matches {args.text!r}", file=sys.stderr)
        return 1
    print(f"{'MATCH':10} {_header()}")
    for view, how in found:
        print(f"{how:10} {_row(view)}")
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    """Give every portal record its directory entry (portals saved before the directory existed).
    The one operator Scan; resumable with the cursor it prints, and idempotent."""
    from b24core.portals.directory import decode_cursor, encode_cursor
    from b24core.portals.store import DynamoPortalStore

    target = find_target(args.stack)
    directory = DynamoPortalStore(target.table_name, target.region, target.dynamodb_endpoint).directory
    try:
        key = decode_cursor(args.cursor)
    except ValueError as exc:
        raise TargetError(f"--cursor: {exc}") from None
    records = written = 0
    try:
        while True:
            seen, wrote, key = directory.reindex_page(key, args.page_size)
            records, written = records + seen, written + wrote
            print(
                f"\rreindex: {records} portal record(s) read, {written} entr(ies) written",
                end="",
                file=sys.stderr,
            )
            if key is None:
                break
    except BaseException:
        print(f"\nb24app: reindex stopped; resume with --cursor {encode_cursor(key)}", file=sys.stderr)
        raise
    print("", file=sys.stderr)
    print(
        f"reindexed {records} portal(s): {written} directory entr(ies) written, "
        f"{records - written} already there"
    )
    return 0


def register(portals: Any) -> None:
    p = portals.add_parser("list", help="portals in domain order, a page at a time (never token values)")
    p.add_argument("--limit", type=int, default=100, help="portals per page (default 100)")
    p.add_argument("--cursor", help="continue where the previous page stopped")
    p.add_argument("--all", action="store_true", help="every portal, streamed page by page")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true", help="CSV export (public fields only)")
    add_filters(p)
    p.set_defaults(func=cmd_list)
    p = portals.add_parser("find", help="a portal by domain (exact, prefix or substring) or member_id")
    p.add_argument("text", metavar="DOMAIN_OR_MEMBER_ID")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_find)
    p = portals.add_parser("reindex", help="list portals saved before the directory existed (resumable)")
    p.add_argument("--cursor", help="resume where a stopped reindex left off")
    p.add_argument("--page-size", type=int, default=500)
    p.set_defaults(func=cmd_reindex)
