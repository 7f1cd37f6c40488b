"""``b24app events redrive [--member-id X] [--dry-run]`` and ``b24app events dlq inspect|purge``.

The DLQ of 5,000 portals holds many portals' events at once: each command can be narrowed to one
portal (``--member-id``), and what it prints is b24core.worker.dlq's summary of a message — never its
body, so never an auth block or a token.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from b24cli.target import Target, TargetError, find_target


def _queues(args: argparse.Namespace, need_queue: bool = False) -> Target:
    target = find_target(args.stack)
    if not target.events_dlq_url or (need_queue and not target.events_queue_url):
        raise TargetError("the stack names no EventsQueue/EventsDLQ")
    return target


def _age(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "-"


def _lines(events: list[dict[str, Any]], shown: int = 50) -> None:
    for ev in events[:shown]:
        print(
            f"  {ev['event']:24} member {ev['member_id'] or '-'} ({ev['domain'] or '-'})  "
            f"object {ev['object_id'] or '-'}  attempts {ev['attempts']}  "
            f"first failed {_when(ev['first_failure_at'])}  age {_age(ev['age_s'])}  reason {ev['reason']}"
        )
    if len(events) > shown:
        print(f"  ... and {len(events) - shown} more (--json lists them all)")


def cmd_redrive(args: argparse.Namespace) -> int:
    from b24core.worker import dlq

    target = _queues(args, need_queue=True)
    sqs = target.sqs()
    if args.dry_run:
        report = dlq.inspect(sqs, target.events_dlq_url, args.member_id, args.limit)
    else:
        report = dlq.redrive(sqs, target.events_dlq_url, target.events_queue_url, args.member_id, args.limit)
    if args.json:
        answer = {
            "dry_run": args.dry_run,
            "member_id": args.member_id,
            "seen": report.matched,
            "scanned": report.seen,
            "moved": report.moved,
            "events": report.events,
        }
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return 0
    verb = "would return" if args.dry_run else "returned"
    count = report.matched if args.dry_run else report.moved
    whose = f" of portal {args.member_id}" if args.member_id else ""
    print(f"{verb} {count} event(s){whose} from the DLQ to the events queue")
    if args.member_id:
        print(f"  {report.seen - report.matched} other event(s) stay in the DLQ")
    _lines(report.events)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from b24core.worker import dlq

    target = _queues(args)
    report = dlq.inspect(target.sqs(), target.events_dlq_url, args.member_id, args.limit)
    if args.json:
        print(json.dumps(report.events, indent=2, ensure_ascii=False))
        return 0
    whose = f" of portal {args.member_id}" if args.member_id else ""
    print(f"{report.matched} dead-lettered event(s){whose} (of {report.seen} looked at)")
    _lines(report.events, shown=args.limit)
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from b24core.worker import dlq

    whose = f"portal {args.member_id}'s" if args.member_id else "EVERY"
    if not args.yes:
        print(
            f"b24app: this deletes {whose} dead-lettered events for good; add --yes to do it "
            "(`events dlq inspect` shows them first)",
            file=sys.stderr,
        )
        return 2
    target = _queues(args)
    report = dlq.purge(target.sqs(), target.events_dlq_url, args.member_id)
    if args.json:
        print(json.dumps({"member_id": args.member_id, "deleted": report.deleted, "scanned": report.seen}))
        return 0
    print(
        f"deleted {report.deleted} dead-lettered event(s) ({whose.lower()}); "
        f"{report.seen - report.deleted} stay"
    )
    return 0


def register(sub: Any) -> None:
    events = sub.add_parser("events", help="the event queue").add_subparsers(dest="command", required=True)
    p = events.add_parser("redrive", help="return dead-lettered events to the events queue")
    p.add_argument("--member-id", help="only this portal's events (the others stay in the DLQ)")
    p.add_argument("--dry-run", action="store_true", help="only list what would be returned")
    p.add_argument("--limit", type=int, default=10_000)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_redrive)
    dlq = events.add_parser("dlq", help="the dead-letter queue").add_subparsers(
        dest="dlq_command", required=True
    )
    p = dlq.add_parser(
        "inspect", help="what is dead-lettered: portal, event, object, attempts, age (no tokens)"
    )
    p.add_argument("--member-id", help="only this portal's events")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)
    p = dlq.add_parser("purge", help="delete dead-lettered events for good (needs --yes)")
    p.add_argument("--member-id", help="only this portal's events (the others stay)")
    p.add_argument("--yes", action="store_true", help="confirm: the events are gone afterwards")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_purge)
