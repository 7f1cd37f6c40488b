"""``b24app portals`` capability parts: the report in ``show``, ``list --missing FEATURE`` and
``recheck MEMBER_ID`` (invokes CapabilityCheckFunction, as the install and the schedule do; many
portals at once: b24cli.bulk_cmd)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from b24cli import bulk_cmd
from b24cli.target import Target, TargetError, find_target

_MARK = {"available": "ok", "missing": "MISSING", "unknown": "unknown"}


def _when(ts: Any) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "-"


def _status(info: dict[str, Any]) -> str:
    status = info.get("status")
    if status in _MARK:
        return str(status)
    available = info.get("available")
    return "available" if available is True else "missing" if available is False else "unknown"


def features_line(capabilities: dict[str, Any]) -> str:
    features = capabilities.get("features") or {}
    if not features:
        return "not checked"
    return " ".join(f"{name}:{_MARK[_status(info)]}" for name, info in sorted(features.items()))


def is_missing(capabilities: dict[str, Any], feature: str) -> bool:
    info = (capabilities.get("features") or {}).get(feature)
    return isinstance(info, dict) and _status(info) == "missing"


def capability_rows(capabilities: dict[str, Any], history: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The capability report as (label, value) rows for ``portals show``."""
    if not capabilities.get("features"):
        return [("capabilities", "not checked yet")]
    kind = capabilities.get("kind") or {}
    plan = capabilities.get("plan") or {}
    sources = capabilities.get("sources") or {}
    rows = [
        (
            "capabilities checked",
            f"{_when(capabilities.get('checked_at'))} ({capabilities.get('trigger', '-')})",
        ),
        (
            "next re-check",
            _when(capabilities.get("next_check_at")) if capabilities.get("next_check_at") else "none",
        ),
        ("portal kind", f"{kind.get('kind', '-')} ({kind.get('told_by', '-')})"),
        (
            "plan",
            " ".join(
                f"{k}={plan[k]}"
                for k in ("license", "license_family", "status", "payment_expired")
                if k in plan
            )
            or "-",
        ),
        ("learned from", ", ".join(f"{k}: {v}" for k, v in sources.items() if k != "complete") or "-"),
    ]
    for name, info in sorted((capabilities.get("features") or {}).items()):
        label = f"  {name} ({'required' if info.get('required') else 'optional'})"
        rows.append((label, f"{_status(info)}: {info.get('reason', '')}"))
        for key, what in (
            ("missing_methods", "methods"),
            ("missing_events", "events"),
            ("missing_scopes", "scopes"),
        ):
            if info.get(key):
                rows.append((f"    lacks {what}", ", ".join(info[key])))
    rows.append(("bound events", ", ".join(capabilities.get("bound") or []) or "-"))
    if capabilities.get("bind_errors"):
        rows.append(("bind errors", ", ".join(f"{k}={v}" for k, v in capabilities["bind_errors"].items())))
    if capabilities.get("errors"):
        rows.append(("check errors", ", ".join(f"{k}={v}" for k, v in capabilities["errors"].items())))
    for entry in history[:5]:
        rows.append((f"history {_when(entry.get('at'))}", _describe(entry)))
    return rows


def _describe(entry: dict[str, Any]) -> str:
    parts = []
    for change in entry.get("changes", []):
        if "feature" in change:
            parts.append(f"{change['feature']} {change['from']} -> {change['to']}")
        for key in ("kind", "plan"):
            if key in change:
                parts.append(f"{key} {change[key]['from']} -> {change[key]['to']}")
    return f"{'; '.join(parts)} ({entry.get('trigger', '-')})"


def history_for(target: Target, member_id: str, limit: int = 5) -> list[dict[str, Any]]:
    from b24core.capabilities.store import DynamoCapabilityStore

    return DynamoCapabilityStore(target.table_name, target.region, target.dynamodb_endpoint).history(
        member_id, limit
    )


def cmd_portals_recheck(args: argparse.Namespace) -> int:
    target = find_target(args.stack)
    if not target.capability_function:
        raise TargetError(
            f"{target.description} names no CapabilityCheckFunction: use the local stack or --stack NAME"
        )
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "lambda",
        region_name=target.region,
        endpoint_url=target.lambda_endpoint,
        config=Config(read_timeout=90, retries={"max_attempts": 1, "mode": "standard"}),
    )
    resp = client.invoke(
        FunctionName=target.capability_function,
        InvocationType="RequestResponse",
        Payload=json.dumps({"action": "check", "member_id": args.member_id, "trigger": "manual"}),
    )
    report = json.loads(resp["Payload"].read() or b"null")
    if resp.get("FunctionError") or not isinstance(report, dict):
        print(f"b24app: the check failed: {report}", file=sys.stderr)
        return 1
    if "error" in report:
        print(f"b24app: {report['error']} ({args.member_id})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    rows = capability_rows(report, [])
    width = max(len(k) for k, _ in rows)
    print(f"re-checked {args.member_id}: {features_line(report)}")
    for key, value in rows:
        print(f"{key:{width}}  {value}")
    return 0


def register(portals: Any) -> None:
    """Add ``portals recheck`` to the ``portals`` sub-commands."""
    p_recheck = portals.add_parser(
        "recheck", help="ask the portal now what it has of what the app needs, and bind what is due"
    )
    p_recheck.add_argument("member_id", nargs="?", help="one portal; or --all / a filter for many")
    p_recheck.add_argument("--json", action="store_true")
    bulk_cmd.add_bulk(p_recheck, "recheck", cmd_portals_recheck)
