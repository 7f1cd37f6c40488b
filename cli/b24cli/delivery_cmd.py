"""``b24app portals probe MEMBER_ID`` and ``b24app portals set-mode MEMBER_ID online|lossless``, and
the delivery lines of ``b24app portals show``.

Probing and switching modes call the portal, so they run in the OfflinePullFunction (invoked through
Lambda: the deployed stack's, or the local stack's Invoke API); reading the state needs only the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from b24cli import bulk_cmd
from b24cli.target import Target, TargetError, find_target

FUNCTION_ID = "OfflinePullFunction"
FUNCTION_OUTPUT = "OfflinePullFunctionName"
LIST_URL = "https://dl.bitrix24.com/webhook/app-world.json"


def _when(ts: int | float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "-"


def delivery_store(target: Target) -> Any:
    from b24core.delivery.store import DynamoDeliveryStore

    return DynamoDeliveryStore(target.table_name, target.region, target.dynamodb_endpoint)


def _function(stack: str | None, target: Target) -> tuple[str, Any]:
    """(function name, lambda client) of the stack's OfflinePullFunction."""
    import boto3

    stack = stack or os.environ.get("B24_STACK_NAME")
    if stack:
        cfn = boto3.client("cloudformation", region_name=target.region)
        outputs = cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
        values = {o["OutputKey"]: o["OutputValue"] for o in outputs}
        if FUNCTION_OUTPUT not in values:
            raise TargetError(f"stack {stack!r} has no {FUNCTION_OUTPUT} output")
        return values[FUNCTION_OUTPUT], boto3.client("lambda", region_name=target.region)
    stack_file = Path(os.environ.get("B24_LOCAL_STATE_DIR") or ".local") / "stack.json"
    if not stack_file.exists():
        raise TargetError("probing needs a stack: start `make run`, or pass --stack NAME")
    info = json.loads(stack_file.read_text())
    name = (info.get("resources") or {}).get(FUNCTION_ID)
    if not name or not info.get("invoke_url"):
        raise TargetError(f"{stack_file} names no {FUNCTION_ID}")
    client = boto3.client("lambda", region_name=target.region, endpoint_url=str(info["invoke_url"]))
    return str(name), client


def _invoke(args: argparse.Namespace, target: Target, payload: dict[str, Any]) -> dict[str, Any]:
    name, client = _function(args.stack, target)
    response = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
    body = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        raise TargetError(f"{FUNCTION_ID} failed: {body.get('errorType')}: {body.get('errorMessage')}")
    return body if isinstance(body, dict) else {}


# ---------------------------------------------------------------- portals show
def view(target: Target, member_id: str) -> dict[str, Any] | None:
    from b24core.delivery.store import as_dict

    state = delivery_store(target).get(member_id)
    return as_dict(state) if state is not None else None


def audit_view(target: Target, member_id: str) -> dict[str, Any] | None:
    from b24core.delivery.audit_store import DynamoAuditStore

    state = DynamoAuditStore(target.table_name, target.region, target.dynamodb_endpoint).get(member_id)
    return state.public_view() if state is not None else None


def _audit_rows(target: Target, member_id: str) -> list[tuple[str, str]]:
    audit = audit_view(target, member_id)
    if audit is None:
        return [("change audit", "not started")]
    last = audit["last"] or {}
    line = (
        f"last {_when(audit['last_at'])}: {last.get('judged', 0)} change(s) judged, "
        f"{last.get('missed', 0) + last.get('deletes_missed', 0)} missed, {last.get('polled', 0)} polled; "
        f"next {_when(audit['next_at'])}"
    )
    rows = [("change audit", line)]
    rows.append(
        (
            "  audit budget",
            f"every {last.get('every_s', '-')} s, grace {last.get('grace_s', '-')} s: "
            f"~{last.get('budget_per_hour', '-')} requests/h of the portal's REST budget "
            f"(this run {last.get('requests', 0)})",
        )
    )
    rows.append(("  missed so far", f"{audit['missed_total']} (last {_when(audit['last_missed_at'])})"))
    return rows


def show_rows(target: Target, member_id: str) -> list[tuple[str, str]]:
    v = view(target, member_id)
    if v is None:
        return [("delivery", "not probed yet"), *_audit_rows(target, member_id)]
    probe = v["probe"]
    offline = v["offline"]
    mode = v["mode"]
    rows = [("delivery", f"{mode}" + (f" ({v['reason']})" if v["reason"] else ""))]
    rows.append(("last confirmed", _when(v["last_confirmed_at"])))
    rows.append(("route switches", f"{v['switches']} (b24app portals route {member_id})"))
    rows.extend(_audit_rows(target, member_id))
    if v["auth"] == "webhook":
        return rows
    last = f"{probe['outcome']}, sent {_when(probe['sent_at'])}"
    if probe["last_arrived_at"]:
        last += f", last arrival {_when(probe['last_arrived_at'])}"
    if probe["reason"]:
        last += f" — {probe['reason']}"
    rows.append(("last probe", last))
    rows.append(("next probe", _when(probe["due_at"] or probe["next_at"])))
    if v["blocked_since"]:
        rows.append(("blocked since", _when(v["blocked_since"])))
        rows.append(
            (
                "  admin must",
                "let the portal exchange requests with the Bitrix24 event queue servers "
                f"(list: {LIST_URL}); notified {_when(v['admin_notified_at'])}",
            )
        )
        if v.get("admin_notice_problem"):
            rows.append(("  admin not told", str(v["admin_notice_problem"])))
    if offline["bound"] or mode != "online" or offline["pulled_total"]:
        rows.append(
            (
                "offline queue",
                f"bound={'yes' if offline['bound'] else 'no'} events={','.join(offline['events']) or '-'} "
                f"last pull {_when(offline['last_pull_at'])} ({offline['last_pull_count']}), "
                f"total {offline['pulled_total']}",
            )
        )
        for key in ("bind_error", "pull_error"):
            if offline[key]:
                rows.append((f"  {key.replace('_', ' ')}", str(offline[key])))
    return rows


# ---------------------------------------------------------------- commands
def cmd_route(args: argparse.Namespace) -> int:
    """The route's switches, oldest first, each with the evidence that made it."""
    target = find_target(args.stack)
    state = delivery_store(target).get(args.member_id)
    if state is None:
        print(f"b24app: portal {args.member_id} has no delivery route yet", file=sys.stderr)
        return 1
    history = [dict(entry) for entry in state.history]
    if args.json:
        answer = {"member_id": args.member_id, "mode": str(state.mode), "history": history}
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return 0
    print(f"{args.member_id}: {state.mode} since {_when(state.mode_changed_at)} ({state.reason or '-'})")
    if not history:
        print("  no switch yet")
    for entry in history:
        evidence = entry.get("evidence") or {}
        shown = ", ".join(f"{k}={v}" for k, v in sorted(evidence.items()) if v not in ("", None))
        print(
            f"  {_when(entry.get('at') or 0)}  {entry.get('from')} -> {entry.get('to')}  "
            f"{entry.get('reason')}" + (f"  [{shown}]" if shown else "")
        )
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    target = find_target(args.stack)
    answer = _invoke(args, target, {"action": "probe", "member_id": args.member_id})
    if answer.get("error"):
        print(f"b24app: {answer['error']}", file=sys.stderr)
        return 1
    deadline = time.monotonic() + max(0.0, args.wait)
    state = view(target, args.member_id) or answer
    while state["probe"]["outcome"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = view(target, args.member_id) or state
    if args.json:
        print(json.dumps(state, indent=2, ensure_ascii=False))
        return 0
    probe = state["probe"]
    if probe["outcome"] == "arrived":
        print(f"probe arrived: events reach the app from {args.member_id} (mode {state['mode']})")
    elif probe["outcome"] == "pending":
        print(
            f"probe sent at {_when(probe['sent_at'])}; not arrived yet — judged at {_when(probe['due_at'])} "
            "by the probe schedule"
        )
    else:
        print(f"probe {probe['outcome']}: {probe['reason'] or '-'} (mode {state['mode']})")
    return 0 if probe["outcome"] in ("arrived", "pending") else 1


def cmd_set_mode(args: argparse.Namespace) -> int:
    target = find_target(args.stack)
    answer = _invoke(args, target, {"action": "set_mode", "member_id": args.member_id, "mode": args.mode})
    if answer.get("error"):
        print(f"b24app: {answer['error']}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return 0
    pulled = answer.get("pull") or {}
    print(
        f"delivery mode of {args.member_id}: {answer['mode']}"
        + (f" (pulled {pulled.get('enqueued', 0)} record(s))" if pulled.get("enqueued") else "")
    )
    return 0


def register(portals: Any) -> None:
    p = portals.add_parser("route", help="how a portal's events reach the app: every switch and its evidence")
    p.add_argument("member_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_route)
    p = portals.add_parser("probe", help="test now whether Bitrix24's event queue reaches the app")
    p.add_argument("member_id", nargs="?", help="one portal; or --all / a filter for many")
    p.add_argument("--wait", type=float, default=15.0, help="seconds to wait for the probe (default 15)")
    p.add_argument("--json", action="store_true")
    bulk_cmd.add_bulk(p, "probe", cmd_probe)
    p = portals.add_parser(
        "set-mode", help="lossless: pull the offline queue as well as online events; online: stop that"
    )
    p.add_argument("member_id")
    p.add_argument("mode", choices=["online", "lossless"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_set_mode)
