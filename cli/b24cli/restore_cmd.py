"""``b24app restore merge --from TABLE --into TABLE [--dry-run]``: after a point-in-time restore, bring
what the live table lost back without bringing back a spent refresh token (docs/restore.md; the rule is
b24core.portals.restore). Prints counts and member_ids, never a value of an item."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from b24cli.target import TargetError, find_target

_SHOWN = 50  # member_ids listed per action in the text report (--json lists them all)
_MEANING = {
    "scanned": "items read from FROM",
    "restored": "items INTO lacked, copied from FROM",
    "kept": "items INTO already had",
    "tokens_kept_newer": "portals whose newer tokens in INTO beat FROM's older ones",
    "tokens_taken": "portals that took FROM's newer tokens",
    "skipped": "leases, idempotency records, items of portals that stay deleted",
    "purged": "items of portals FROM uninstalled after INTO's time",
}


def _dynamodb(stack: str | None) -> Any:
    """A DynamoDB client for the stack's region and endpoint (the local stack's DynamoDB Local);
    without a stack, the region of the environment and AWS's own endpoint."""
    import boto3

    try:
        target = find_target(stack)
        region, endpoint = target.region, target.dynamodb_endpoint
    except TargetError:
        if stack:
            raise
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        endpoint = None
    return boto3.client("dynamodb", region_name=region, endpoint_url=endpoint)


def cmd_merge(args: argparse.Namespace) -> int:
    from b24core.portals.restore import RestoreError, merge

    try:
        report = merge(_dynamodb(args.stack), args.source, args.target, dry_run=args.dry_run)
    except RestoreError as exc:
        raise TargetError(str(exc)) from None
    if args.json:
        print(json.dumps({"dry_run": report.dry_run, **report.counts(), "portals": report.portals}, indent=2))
        return 0
    verb = "would merge" if args.dry_run else "merged"
    print(f"{verb} {args.source} into {args.target}:")
    for name, count in report.counts().items():
        print(f"  {name:18} {count:<8} {_MEANING.get(name, '')}")
    for action, members in sorted(report.portals.items()):
        more = f" (+{len(members) - _SHOWN} more)" if len(members) > _SHOWN else ""
        print(f"  portals {action}: {', '.join(members[:_SHOWN])}{more}")
    return 0


def register(sub: Any) -> None:
    restore = sub.add_parser(
        "restore", help="after a point-in-time restore (docs/restore.md)"
    ).add_subparsers(dest="command", required=True)
    p = restore.add_parser(
        "merge",
        help="copy what INTO lacks from FROM, keeping the newest token fields of every portal",
        description=(
            "Copy every item table INTO lacks from table FROM; of every portal record keep the newest "
            "token pair and state of the two, so a spent refresh token never comes back. Portals "
            "uninstalled after the other table's time stay uninstalled. Safe to run again."
        ),
    )
    p.add_argument("--from", dest="source", required=True, metavar="TABLE", help="e.g. the restored table")
    p.add_argument("--into", dest="target", required=True, metavar="TABLE", help="e.g. the live table")
    p.add_argument("--dry-run", action="store_true", help="count what would change, write nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_merge)
