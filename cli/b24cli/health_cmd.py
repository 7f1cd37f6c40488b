"""The health lines of ``b24app portals show``: when the portal's events were last received and
processed (the worker keeps both, worker/health.py) and how many of its events wait in the DLQ.

The DLQ has no index by portal: its messages are looked at (at most ``DLQ_SCAN_LIMIT``, each made
visible again at once) and counted by their member_id; a capped look says so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from b24cli.target import Target

DLQ_SCAN_LIMIT = 1000


def _when(ts: int) -> str:
    if not ts:
        return "never (no event processed in the last 30 days)"
    ago = max(0, int(datetime.now(UTC).timestamp()) - ts)
    unit = f"{ago} s" if ago < 120 else f"{ago // 60} min" if ago < 7200 else f"{ago // 3600} h"
    return f"{datetime.fromtimestamp(ts, UTC).strftime('%Y-%m-%d %H:%M:%S UTC')} ({unit} ago)"


def view(target: Target, member_id: str) -> dict[str, Any]:
    import boto3

    from b24core.worker.dlq import count_for_portal
    from b24core.worker.health import PortalHealth

    client = boto3.client("dynamodb", region_name=target.region, endpoint_url=target.dynamodb_endpoint)
    health = PortalHealth(client, target.table_name).get(member_id)
    out: dict[str, Any] = {
        "last_event_received_at": health.last_received_at if health else 0,
        "last_event_processed_at": health.last_processed_at if health else 0,
        "dlq": None,
    }
    if target.events_dlq_url:
        dlq = count_for_portal(target.sqs(), target.events_dlq_url, member_id, DLQ_SCAN_LIMIT)
        out["dlq"] = {
            "events": dlq.portal,
            "by_event": dlq.events,
            "scanned": dlq.scanned,
            "capped": dlq.capped,
        }
    return out


def show_rows(health: dict[str, Any]) -> list[tuple[str, str]]:
    dlq = health["dlq"]
    if dlq is None:
        dlq_line = "unknown (this target names no EventsDLQ)"
    else:
        dlq_line = f"{dlq['events']} of {dlq['scanned']} looked at"
        if dlq["capped"]:
            dlq_line += f" (the DLQ holds more: only the first {DLQ_SCAN_LIMIT} were looked at)"
        if dlq["events"]:
            dlq_line += " - " + ", ".join(f"{n} {e}" for e, n in sorted(dlq["by_event"].items()))
            dlq_line += "; b24app events redrive returns them"
    return [
        ("last event received", _when(health["last_event_received_at"])),
        ("last event processed", _when(health["last_event_processed_at"])),
        ("events in the DLQ", dlq_line),
    ]
