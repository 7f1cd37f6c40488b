"""``b24app events redrive [--dry-run]``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from b24cli.target import TargetError, find_target


def cmd_redrive(args: argparse.Namespace) -> int:
    from b24core.worker.redrive import redrive

    target = find_target(args.stack)
    if not target.events_dlq_url or not target.events_queue_url:
        raise TargetError("the stack names no EventsQueue/EventsDLQ")
    report = redrive(
        target.sqs(), target.events_dlq_url, target.events_queue_url, dry_run=args.dry_run, limit=args.limit
    )
    if args.json:
        print(
            json.dumps(
                {
                    "dry_run": args.dry_run,
                    "seen": report.seen,
                    "moved": report.moved,
                    "events": report.events,
                },
                indent=2,
            )
        )
        return 0
    verb = "would return" if args.dry_run else "returned"
    print(f"{verb} {report.seen if args.dry_run else report.moved} event(s) from the DLQ to the events queue")
    for ev in report.events[:50]:
        print(f"  {ev['event']:24} member {ev['member_id']}  object {ev['object_id'] or '-'}")
    return 0


def register(sub: Any) -> None:
    events = sub.add_parser("events", help="the event queue").add_subparsers(dest="command", required=True)
    p = events.add_parser("redrive", help="return dead-lettered events to the events queue")
    p.add_argument("--dry-run", action="store_true", help="only list what would be returned")
    p.add_argument("--limit", type=int, default=10_000)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_redrive)
