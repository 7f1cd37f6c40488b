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
    from b24core.trust.webhooks import disconnect

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


def _watchdog(target: Target, member_id: str) -> dict[str, Any]:
    """What the delivery watchdog last did for this portal (b24core.delivery.watchdog)."""
    import boto3

    from b24core.delivery.watch_store import DynamoWatchStore
    from b24core.events.arrivals import DynamoArrivals

    state = DynamoWatchStore(target.table_name, target.region, target.dynamodb_endpoint).get(member_id)
    client = boto3.client("dynamodb", region_name=target.region, endpoint_url=target.dynamodb_endpoint)
    return {
        "checked_at": state.checked_at if state else 0,
        "verdict": state.verdict if state else "unknown",
        "verdict_at": state.verdict_at if state else 0,
        "last_event_at": DynamoArrivals(client, target.table_name).last(member_id),
    }


def event_queue(
    capabilities: dict[str, Any], conn: Any, delivery: dict[str, Any] | None, watch: dict[str, Any] | None
) -> dict[str, str]:
    """The event-queue finding of ``portals show``: the finding, its label and how it was learned."""
    from b24core.capabilities.isolation import LABELS, QUEUE_NOT_CHECKED, QueueReach

    iso = capabilities.get("isolation") if isinstance(capabilities.get("isolation"), dict) else {}
    recorded = str((iso or {}).get("event_queue") or QueueReach.UNKNOWN)
    if conn is not None and not conn.watched:
        finding, note = str(QueueReach.UNKNOWN), QUEUE_NOT_CHECKED
    elif conn is not None:
        finding = recorded
        last = _when((watch or {}).get("last_event_at") or 0)
        note = {
            str(QueueReach.UNREACHABLE): (
                "delivery watchdog: changes made on the portal brought no outgoing-webhook event "
                f"(found {_when((iso or {}).get('event_queue_at') or 0)}); events come by change polling "
                "until they arrive again"
            ),
            str(QueueReach.OK): f"delivery watchdog: outgoing-webhook events arrive (last {last})",
        }.get(finding, "delivery watchdog: not judged yet (it needs changes older than its grace period)")
    elif (delivery or {}).get("blocked_since"):
        finding, note = str(QueueReach.UNREACHABLE), "delivery probe: it did not arrive"
    elif ((delivery or {}).get("probe") or {}).get("outcome") == "arrived":
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
    out["events_mode"] = events_mode(target, member_id, conn)
    watch = _watchdog(target, member_id) if conn is not None and conn.watched else None
    if watch is not None:
        out["watchdog"] = watch
    if capabilities is not None:
        out.update(event_queue(capabilities, conn, delivery_view(target, member_id), watch))
    return out


def show_rows(target: Target, capabilities: dict[str, Any], member_id: str) -> list[tuple[str, str]]:
    from b24core.capabilities.isolation import summary_line

    v = view(target, member_id, capabilities)
    delivery = delivery_view(target, member_id) or {}
    rows = [("auth mode", v["auth_mode"])]
    if v["auth_mode"] == "webhook":
        rows.append(("incoming webhook", str(v["incoming_webhook"])))
    events = str(v["events_mode"])
    if v.get("polling_since"):
        events += f" (since {_when(v['polling_since'])}: the outgoing webhook's events did not arrive)"
    rows.append(("events come by", events))
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
