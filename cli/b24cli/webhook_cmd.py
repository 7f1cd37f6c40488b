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

from b24cli.delivery_cmd import view as delivery_view
from b24cli.target import Target, find_target


def _stores(target: Target) -> tuple[Any, Any]:
    from b24core.portals.store import DynamoPortalStore
    from b24core.webhooks import DynamoWebhookStore

    return (
        DynamoPortalStore(target.table_name, target.region, target.dynamodb_endpoint),
        DynamoWebhookStore(target.table_name, target.region, target.dynamodb_endpoint),
    )


def _log(message: str, fields: dict[str, Any]) -> None:
    """The operation's log line goes to stderr: stdout stays the answer (``--json`` parses)."""
    from b24core.logs import dumps_safe

    print(dumps_safe({"level": "INFO", "message": message, **fields}), file=sys.stderr)


def _local(target: Target) -> bool:
    """http and private addresses are allowed only against a local stack (make run / tests)."""
    flag = (os.environ.get("B24_LOCAL") or "").lower() in ("1", "true", "yes")
    return flag or target.description.startswith("local stack")


def cmd_connect_webhook(args: argparse.Namespace) -> int:
    from b24core.manifest import load_manifest
    from b24core.webhooks import WebhookRefused, connect, required_scopes

    target = find_target(args.stack)
    portals, webhooks = _stores(target)
    try:
        done = connect(
            args.incoming,
            portals=portals,
            webhooks=webhooks,
            required_scopes=required_scopes(load_manifest()),
            member_id=args.member_id,
            outgoing_token=args.outgoing_token or "",
            local=_local(target),
            log=_log,
        )
    except WebhookRefused as exc:
        print(f"b24app: webhook refused: {exc}; nothing was stored", file=sys.stderr)
        return 1
    view = done.view()
    if args.json:
        print(json.dumps(view, indent=2, ensure_ascii=False))
        return 0
    verb = "created and connected" if done.created else "connected"
    print(f"{verb} {view['domain']} (member_id {view['member_id']}) by incoming webhook")
    print(f"  webhook   {view['incoming_webhook']} (user {view['webhook_user_id']})")
    print(f"  scopes    {', '.join(view['webhook_scopes']) or '-'}")
    print(f"  outgoing  {'token stored' if view['has_outgoing_token'] else 'none'}")
    print("  REST for this portal now goes through the webhook (no token refresh).")
    return 0


def cmd_disconnect_webhook(args: argparse.Namespace) -> int:
    from b24core.webhooks import disconnect

    portals, webhooks = _stores(find_target(args.stack))
    gone = disconnect(args.member_id, webhooks, portals, log=_log)
    if not gone:
        print(f"portal {args.member_id} has no webhook connected", file=sys.stderr)
        return 1
    print(f"webhook disconnected from {args.member_id}: its REST goes by OAuth again")
    return 0


def events_mode(target: Target, member_id: str, conn: Any) -> str:
    """How this portal's events come (the line ``portals show`` prints)."""
    delivery = delivery_view(target, member_id)
    if conn is None:
        mode = (delivery or {}).get("mode") or "online"
        return {"online": "app events (online)", "pull": "offline queue (pull)"}.get(mode, str(mode))
    return str(conn.events_by)


def view(target: Target, member_id: str) -> dict[str, Any]:
    from b24core.webhooks import AuthMode

    _, webhooks = _stores(target)
    conn = webhooks.get(member_id)
    out: dict[str, Any] = {"auth_mode": str(AuthMode.OAUTH if conn is None else AuthMode.WEBHOOK)}
    if conn is not None:
        out.update(conn.public_view())
    out["events_mode"] = events_mode(target, member_id, conn)
    return out


def show_rows(target: Target, capabilities: dict[str, Any], member_id: str) -> list[tuple[str, str]]:
    from b24core.isolation import summary_line

    v = view(target, member_id)
    delivery = delivery_view(target, member_id) or {}
    rows = [("auth mode", v["auth_mode"])]
    if v["auth_mode"] == "webhook":
        rows.append(("incoming webhook", str(v["incoming_webhook"])))
    rows.append(("events come by", str(v["events_mode"])))
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
