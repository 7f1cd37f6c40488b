"""``b24app portals connect-webhook --incoming URL [--outgoing-token TOKEN] [--json]``,
``b24app portals disconnect-webhook MEMBER_ID``, and the auth / isolation lines of ``portals show``.

Connecting verifies the webhook with one harmless call from this machine, then writes the table; it
never prints the webhook's code or the outgoing token (docs/isolated-boxes.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from b24cli.delivery_cmd import delivery_store
from b24cli.delivery_cmd import view as delivery_view
from b24cli.target import Target, find_target


def _stores(target: Target) -> tuple[Any, Any]:
    from b24core.portals.sealing import codec_for
    from b24core.portals.store import DynamoPortalStore
    from b24core.portals.webhook_store import DynamoWebhookStore

    # The code the operator connects is sealed (kms:GenerateDataKey); nothing is ever opened here.
    codec = codec_for(target.token_key_id, target.kms, seal_only=True)
    return (
        DynamoPortalStore(target.table_name, target.region, target.dynamodb_endpoint, codec),
        DynamoWebhookStore(target.table_name, target.region, target.dynamodb_endpoint, codec),
    )


def _log(message: str, fields: dict[str, Any]) -> None:
    """The operation's log line goes to stderr: stdout stays the answer (``--json`` parses)."""
    from b24core.aws.logs import dumps_safe

    print(dumps_safe({"level": "INFO", "message": message, **fields}), file=sys.stderr)


def _local(target: Target) -> bool:
    """http and private addresses are allowed only against a local stack (make run / tests)."""
    flag = (os.environ.get("B24_LOCAL") or "").lower() in ("1", "true", "yes")
    return flag or target.description.startswith("local stack")


def cmd_connect_webhook(args: argparse.Namespace) -> int:
    from b24core.bitrix.webhook import WebhookRefused
    from b24core.capabilities.manifest import load_manifest
    from b24core.trust.webhooks import connect

    target = find_target(args.stack)
    portals, webhooks = _stores(target)
    try:
        done = connect(
            args.incoming,
            portals=portals,
            webhooks=webhooks,
            required_scopes=load_manifest().required_scopes(),
            member_id=args.member_id,
            outgoing_token=args.outgoing_token or "",
            local=_local(target),
            log=_log,
        )
    except WebhookRefused as exc:
        print(f"b24app: webhook refused: {exc}; nothing was stored", file=sys.stderr)
        return 1
    route = _route_connected(target, done.portal.member_id, bool(done.connection.outgoing_token))
    view = {**done.view(), "events_by": EVENTS_BY.get(str(route.mode), str(route.mode))}
    if args.json:
        print(json.dumps(view, indent=2, ensure_ascii=False))
        return 0
    verb = "created and connected" if done.created else "connected"
    print(f"{verb} {view['domain']} (member_id {view['member_id']}) by incoming webhook")
    print(f"  webhook   {view['incoming_webhook']} (user {view['webhook_user_id']})")
    print(f"  scopes    {', '.join(view['webhook_scopes']) or '-'}")
    print(f"  outgoing  {'token stored' if view['has_outgoing_token'] else 'none'}")
    print(f"  events    {view['events_by']}")
    print("  REST for this portal now goes through the webhook (no token refresh).")
    return 0


def cmd_disconnect_webhook(args: argparse.Namespace) -> int:
    from b24core.trust.webhooks import disconnect

    target = find_target(args.stack)
    portals, webhooks = _stores(target)
    gone = disconnect(args.member_id, webhooks, portals, log=_log)
    if not gone:
        print(f"portal {args.member_id} has no webhook connected", file=sys.stderr)
        return 1
    import time

    from b24core.delivery.store import webhook_disconnected

    webhook_disconnected(delivery_store(target), args.member_id, int(time.time()))
    print(f"webhook disconnected from {args.member_id}: its REST goes by OAuth again")
    return 0


EVENTS_BY = {
    "webhook": "outgoing webhook",
    "polling": "change polling",
    "online": "app events (online)",
    "pull": "offline queue (pull)",
    "lossless": "app events and the offline queue (lossless)",
}


def _route_connected(target: Target, member_id: str, outgoing: bool) -> Any:
    """The portal's delivery route follows the connection, and its change audit starts at once."""
    import time

    from b24core.delivery.audit_store import DynamoAuditStore, schedule_audit
    from b24core.delivery.store import webhook_connected

    now = int(time.time())
    route = webhook_connected(delivery_store(target), member_id, outgoing, now)
    audits = DynamoAuditStore(target.table_name, target.region, target.dynamodb_endpoint)
    schedule_audit(audits, member_id, now)
    return route


def events_mode(target: Target, member_id: str) -> str:
    """How this portal's events come (the line ``portals show`` prints)."""
    mode = str((delivery_view(target, member_id) or {}).get("mode") or "online")
    return EVENTS_BY.get(mode, mode)


def event_queue(capabilities: dict[str, Any], conn: Any, delivery: dict[str, Any] | None) -> dict[str, str]:
    """The event-queue finding of ``portals show``: the finding, its label and how it was learned."""
    from b24core.capabilities.isolation import LABELS, QUEUE_NOT_CHECKED, QueueReach

    iso = capabilities.get("isolation") if isinstance(capabilities.get("isolation"), dict) else {}
    recorded = str((iso or {}).get("event_queue") or QueueReach.UNKNOWN)
    route = delivery or {}
    if conn is not None and not conn.outgoing_token:
        finding, note = str(QueueReach.UNKNOWN), QUEUE_NOT_CHECKED
    elif conn is not None:
        if route.get("mode") == "polling":
            finding = str(QueueReach.UNREACHABLE)
            note = (
                "change audit: changes made on the portal brought no outgoing-webhook event "
                f"(switched {_when(route.get('mode_changed_at') or 0)}); events come by change polling "
                "until they arrive again"
            )
        elif route.get("last_confirmed_at"):
            finding = str(QueueReach.OK)
            note = f"change audit: outgoing-webhook events arrive (last {_when(route['last_confirmed_at'])})"
        else:
            finding, note = recorded, "change audit: not judged yet (it needs changes older than its grace)"
    elif route.get("blocked_since"):
        finding, note = str(QueueReach.UNREACHABLE), "delivery probe: it did not arrive"
    elif (route.get("probe") or {}).get("outcome") == "arrived":
        finding, note = str(QueueReach.OK), "delivery probe: it arrived"
    else:
        finding, note = recorded, "delivery probe: no finding yet"
    label = LABELS.get(QueueReach(finding), finding) if finding in tuple(QueueReach) else finding
    return {"event_queue": finding, "event_queue_label": label, "event_queue_note": note}


def _when(ts: Any) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "-"


def view(target: Target, member_id: str, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
    from b24core.portals.webhook_store import AuthMode

    _, webhooks = _stores(target)
    conn = webhooks.get(member_id)
    out: dict[str, Any] = {"auth_mode": str(AuthMode.OAUTH if conn is None else AuthMode.WEBHOOK)}
    if conn is not None:
        out.update(conn.public_view())
    out["events_mode"] = out["events_by"] = events_mode(target, member_id)
    if capabilities is not None:
        out.update(event_queue(capabilities, conn, delivery_view(target, member_id)))
    return out


def show_rows(target: Target, capabilities: dict[str, Any], member_id: str) -> list[tuple[str, str]]:
    from b24core.capabilities.isolation import summary_line

    v = view(target, member_id, capabilities)
    delivery = delivery_view(target, member_id) or {}
    rows = [("auth mode", v["auth_mode"])]
    if v["auth_mode"] == "webhook":
        rows.append(("incoming webhook", str(v["incoming_webhook"])))
    rows.append(("events come by", str(v["events_mode"])))
    rows.append(("event queue", f"{v['event_queue_label']} — {v['event_queue_note']}"))
    rows.append(("isolation", summary_line(capabilities, bool(delivery.get("blocked_since")))))
    iso = capabilities.get("isolation")
    for advice in (iso.get("advice") if isinstance(iso, dict) else None) or []:
        rows.append(("  network admin", str(advice)))
    return rows


def register(portals: Any) -> None:
    p = portals.add_parser(
        "connect-webhook", help="connect a portal by an incoming webhook (for a box cut off from the cloud)"
    )
    p.add_argument("--incoming", required=True, metavar="URL", help="https://PORTAL/rest/USER_ID/CODE/")
    p.add_argument("--outgoing-token", metavar="TOKEN", help="the outgoing webhook's application token")
    p.add_argument("--member-id", help="the portal to connect it to (default: found by address)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_connect_webhook)
    d = portals.add_parser("disconnect-webhook", help="back to OAuth for this portal")
    d.add_argument("member_id")
    d.set_defaults(func=cmd_disconnect_webhook)
