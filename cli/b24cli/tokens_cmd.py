"""``b24app tokens status|refresh|sweep``: token custody for operators. Never prints a token.

* ``status [--json]`` reads gsi1 only (COUNT queries per token state, no Scan): portals per state, how
  many are due, the oldest refresh, and which portals need their admin.
* ``refresh MEMBER_ID`` and ``sweep`` invoke TokenRefreshFunction (the deployed one, or the local
  stack's), so the client_secret never leaves the function and the refresh takes the same lease every
  other refresh of that portal takes. ``sweep`` drives the function in batches and shows progress.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from b24cli.target import TargetError, find_target, stack_outputs

DAY = 24 * 3600
STATES = ("active", "refresh_failing", "payment_required", "reauth_required", "uninstalled")


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "-"


def _state_dir() -> Path:
    return Path(os.environ.get("B24_LOCAL_STATE_DIR") or ".local")


@dataclass(frozen=True)
class FunctionRef:
    name: str
    region: str
    endpoint: str | None


def _function(stack: str | None) -> FunctionRef:
    """Where TokenRefreshFunction is: a deployed stack's output, or the local stack's stack.json."""
    stack = stack or os.environ.get("B24_STACK_NAME")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if stack:
        values = stack_outputs(stack, region)
        if "TokenRefreshFunctionName" not in values:
            raise TargetError(f"stack {stack!r} has no TokenRefreshFunctionName output (redeploy)")
        return FunctionRef(values["TokenRefreshFunctionName"], region, None)
    stack_file = _state_dir() / "stack.json"
    if stack_file.exists():
        info = json.loads(stack_file.read_text())
        name = (info.get("resources") or {}).get("TokenRefreshFunction")
        if not name or not info.get("invoke_url"):
            raise TargetError(f"{stack_file} names no TokenRefreshFunction")
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        return FunctionRef(str(name), str(info.get("region") or region), str(info["invoke_url"]))
    raise TargetError("refresh and sweep need a stack: start `make run` here, or pass --stack NAME")


class Invoker:
    """Synchronous invocations of TokenRefreshFunction."""

    def __init__(self, ref: FunctionRef) -> None:
        import boto3
        from botocore.config import Config

        self.ref = ref
        self.client = boto3.client(
            "lambda",
            region_name=ref.region,
            endpoint_url=ref.endpoint,
            config=Config(read_timeout=900, retries={"max_attempts": 1, "mode": "standard"}),
        )

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        resp = self.client.invoke(
            FunctionName=self.ref.name, InvocationType="RequestResponse", Payload=json.dumps(payload)
        )
        body = json.loads(resp["Payload"].read() or b"null")
        if resp.get("FunctionError") or not isinstance(body, dict):
            message = body.get("errorMessage") if isinstance(body, dict) else body
            raise TargetError(f"TokenRefreshFunction failed: {message}")
        return body


def _keepalive_days(args: argparse.Namespace) -> float:
    value = args.keepalive_days or os.environ.get("B24_REFRESH_KEEPALIVE_DAYS") or 30
    return float(value)


def status_report(store: Any, keepalive_days: float, now: int | None = None) -> dict[str, Any]:
    """The census of b24core.tokens.sweep plus the portals that need their admin (at most 20 listed)."""
    from dataclasses import replace

    from b24core.aws.settings import TokenPolicy
    from b24core.portals import token_index
    from b24core.tokens.sweep import census

    now = int(time.time()) if now is None else now
    policy = replace(TokenPolicy(), keepalive_age_s=int(keepalive_days * DAY))
    report = census(store, policy, now)
    lost = store.index_page(token_index.REAUTH, None, 20).portals
    report["reauth_required"] = [
        {"member_id": p.member_id, "domain": p.domain, "since": p.token_state_at} for p in lost
    ]
    report["keepalive_days"] = keepalive_days
    report["now"] = now
    return report


def cmd_tokens_status(args: argparse.Namespace) -> int:
    from b24core.portals.store import DynamoPortalStore

    target = find_target(args.stack)
    store = DynamoPortalStore(target.table_name, target.region, target.dynamodb_endpoint)
    report = status_report(store, _keepalive_days(args))
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    print_status(report, sys.stdout)
    return 0


def print_status(report: dict[str, Any], out: TextIO) -> None:
    states = report["states"]
    print("portals by token state", file=out)
    for state in STATES:
        print(f"  {state:18} {states.get(state, 0):>8}", file=out)
    due = report["due"]
    print(
        f"due now: {due['keepalive'] + due['retry']} "
        f"(keep-alive {due['keepalive']}, scheduled retries {due['retry']}; "
        f"keep-alive age {report['keepalive_days']:g} days)",
        file=out,
    )
    oldest = report.get("oldest_refresh")
    if oldest:
        age_days = (report["now"] - int(oldest["refreshed_at"])) / DAY
        print(
            f"oldest refresh: {_when(int(oldest['refreshed_at']))} ({age_days:.1f} days ago, "
            f"{oldest['member_id']})",
            file=out,
        )
    else:
        print("oldest refresh: -", file=out)
    for entry in report.get("reauth_required") or []:
        print(
            f"needs its admin to open the app: {entry['member_id']} {entry['domain']} "
            f"(since {_when(int(entry['since']))})",
            file=out,
        )


def cmd_tokens_refresh(args: argparse.Namespace) -> int:
    invoke = Invoker(_function(args.stack))
    result = invoke({"action": "refresh", "member_id": args.member_id})
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    if "error" in result:
        print(f"b24app: {result['error']} ({args.member_id})", file=sys.stderr)
        return 1
    outcome = result.get("outcome")
    if not args.json:
        detail = f" - {result['detail']}" if result.get("detail") else ""
        print(f"{args.member_id}: {outcome} (token state {result.get('token_state')}){detail}")
    return 0 if outcome in ("refreshed", "peer_refreshed") else 1


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = width if total <= 0 else min(width, round(width * done / total))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def run_sweep(invoke: Invoker | Any, batch: int, out: TextIO, interactive: bool) -> dict[str, Any]:
    """Drive the function in batches of ``batch`` portals until nothing due is left to do."""
    due = invoke({"action": "due"})
    total = int(due.get("keepalive", 0)) + int(due.get("retry", 0))
    done = refreshed = failed = 0
    outcomes: dict[str, int] = {}
    while True:
        report = invoke({"action": "sweep", "max_portals": batch})
        if report.get("skipped"):
            print("another sweep is running; try again when it ends", file=out)
            return {"skipped": True, "total": total, "done": done}
        handled = sum(int(v) for v in (report.get("outcomes") or {}).values())
        done += handled
        refreshed += int(report.get("refreshed", 0))
        failed += int(report.get("failed", 0))
        for k, v in (report.get("outcomes") or {}).items():
            outcomes[k] = outcomes.get(k, 0) + int(v)
        total = max(total, done)
        line = f"{_bar(done, total)} {done}/{total} refreshed {refreshed} failed {failed}"
        print(("\r" + line) if interactive else line, end="" if interactive else "\n", file=out, flush=True)
        progressed = int(report.get("refreshed", 0)) + int(report.get("failed", 0))
        if report.get("done") or progressed == 0:
            break
    if interactive:
        print(file=out)
    return {"total": total, "done": done, "refreshed": refreshed, "failed": failed, "outcomes": outcomes}


def cmd_tokens_sweep(args: argparse.Namespace) -> int:
    invoke = Invoker(_function(args.stack))
    summary = run_sweep(invoke, args.batch, sys.stderr, sys.stderr.isatty())
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"swept {summary.get('done', 0)} due portals: refreshed {summary.get('refreshed', 0)}, "
            f"failed {summary.get('failed', 0)}"
        )
    return 1 if summary.get("skipped") else 0


def register(sub: Any) -> None:
    """Add the ``tokens`` group to the top-level sub-commands."""
    tokens = sub.add_parser("tokens", help="token custody: states, refresh, keep-alive sweep").add_subparsers(
        dest="command", required=True
    )
    p_status = tokens.add_parser("status", help="portals per token state, due refreshes, oldest refresh")
    p_status.add_argument("--json", action="store_true")
    p_status.add_argument(
        "--keepalive-days", type=float, help="the deployment's keep-alive age (default 30 or the env)"
    )
    p_status.set_defaults(func=cmd_tokens_status)
    p_refresh = tokens.add_parser(
        "refresh", help="refresh one portal now (refused within a day of its last refresh)"
    )
    p_refresh.add_argument("member_id")
    p_refresh.add_argument("--json", action="store_true")
    p_refresh.set_defaults(func=cmd_tokens_refresh)
    p_sweep = tokens.add_parser("sweep", help="run the keep-alive sweep now, with a progress bar")
    p_sweep.add_argument("--batch", type=int, default=50, help="portals per invocation (default 50)")
    p_sweep.add_argument("--json", action="store_true")
    p_sweep.set_defaults(func=cmd_tokens_sweep)
