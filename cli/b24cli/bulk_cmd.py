"""``b24app portals recheck|probe|rebind`` over many portals: ``--all`` or a filter, a progress bar
on stderr and a summary.

Each portal gets exactly what the single-portal command does — one invoke of the function that owns
the work (CapabilityCheckFunction's ``check``, OfflinePullFunction's ``probe`` / ``rebind``) — so
every call to a portal spends that portal's own REST budget, shared with the event workers, and a
portal whose budget is spent answers so and is counted, not hammered. ``--concurrency`` bounds how
many portals are worked on at once (one call each, never two for the same portal).

Only active portals unless ``--state`` says otherwise. Resumable and idempotent: the three actions
may be repeated safely, and ``--checkpoint FILE`` records each portal done so a rerun after an
interruption skips them.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from b24cli.fleet import Filter, Selection, add_filters
from b24cli.target import Target, TargetError, find_target

Action = Callable[[str], tuple[bool, str]]


class Progress:
    """A one-line progress bar redrawn in place (``\\r``) on stderr."""

    def __init__(self, label: str, total: int, out: TextIO | None = None, width: int = 30) -> None:
        self.label, self.total, self.width = label, total, width
        self.out = out or sys.stderr
        self.done = 0
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def step(self, outcome: str) -> None:
        with self._lock:
            self.done += 1
            self.counts[outcome] += 1
            self.draw()

    def draw(self) -> None:
        filled = self.width * self.done // self.total if self.total else self.width
        tally = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        bar = "#" * filled + "." * (self.width - filled)
        print(f"\r{self.label} [{bar}] {self.done}/{self.total} {tally}", end="", file=self.out, flush=True)

    def close(self) -> None:
        print("", file=self.out, flush=True)


def _lambda(target: Target, endpoint: str | None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(read_timeout=90, retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=32)
    return boto3.client("lambda", region_name=target.region, endpoint_url=endpoint, config=config)


def _invoker(client: Any, name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def invoke(payload: dict[str, Any]) -> dict[str, Any]:
        resp = client.invoke(FunctionName=name, InvocationType="RequestResponse", Payload=json.dumps(payload))
        body = json.loads(resp["Payload"].read() or b"null")
        if resp.get("FunctionError") or not isinstance(body, dict):
            return {"error": "function_failed"}
        return body

    return invoke


def make_action(kind: str, args: argparse.Namespace, target: Target) -> Action:
    """One portal's share of the work: (ok, outcome)."""
    if kind == "recheck":
        if not target.capability_function:
            raise TargetError(f"{target.description} names no CapabilityCheckFunction")
        invoke = _invoker(_lambda(target, target.lambda_endpoint), target.capability_function)

        def recheck(member_id: str) -> tuple[bool, str]:
            answer = invoke({"action": "check", "member_id": member_id, "trigger": "manual"})
            return ("error" not in answer, str(answer.get("error") or "checked"))

        return recheck
    from b24cli.delivery_cmd import _function

    name, client = _function(args.stack, target)
    invoke = _invoker(client, name)

    def delivery(member_id: str) -> tuple[bool, str]:
        answer = invoke({"action": kind, "member_id": member_id})
        if answer.get("error"):
            return False, str(answer["error"])
        if kind == "probe":
            return True, str((answer.get("probe") or {}).get("outcome") or "sent")
        return answer.get("outcome") not in ("failed", "budget"), str(answer.get("outcome") or "done")

    return delivery


def _checkpoint(path: str | None) -> tuple[set[str], TextIO | None]:
    if not path:
        return set(), None
    file = Path(path)
    done = set(file.read_text().split()) if file.exists() else set()
    return done, file.open("a")


def run_bulk(kind: str, args: argparse.Namespace) -> int:
    flt = Filter.of(args)
    if not args.all and not flt.any:
        print(f"b24app: name a portal, or choose --all or a filter for a bulk {kind}", file=sys.stderr)
        return 2
    if flt.state is None:  # an uninstalled or blocked portal has nothing to check, probe or bind
        flt = replace(flt, state="active")
    target = find_target(args.stack)
    members = [v["member_id"] for v in Selection(target, flt)]
    done, log = _checkpoint(args.checkpoint)
    todo = [m for m in members if m not in done]
    action = make_action(kind, args, target)
    progress = Progress(kind, len(todo))
    failures: dict[str, str] = {}
    lock = threading.Lock()

    def one(member_id: str) -> None:
        try:
            ok, outcome = action(member_id)
        except Exception as exc:  # one portal's failure never stops the others
            ok, outcome = False, type(exc).__name__
        with lock:
            if ok and log is not None:
                log.write(member_id + "\n")
                log.flush()
            if not ok:
                failures[member_id] = outcome
        progress.step(outcome if ok else "failed")

    progress.draw()
    try:
        with ThreadPoolExecutor(max_workers=max(1, args.concurrency)) as pool:
            list(pool.map(one, todo))
    finally:
        progress.close()
        if log is not None:
            log.close()
    summary = {
        "action": kind,
        "selected": len(members),
        "skipped_done_before": len(members) - len(todo),
        "done": len(todo) - len(failures),
        "failed": len(failures),
        "outcomes": dict(progress.counts),
        "failures": failures,
    }
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        tally = ", ".join(f"{k} {v}" for k, v in sorted(progress.counts.items())) or "nothing to do"
        print(
            f"{kind}: {len(members)} portal(s) selected, "
            f"{summary['skipped_done_before']} done before; {tally}"
        )
        for member_id, why in sorted(failures.items())[:50]:
            print(f"  failed {member_id}: {why}")
        if failures and args.checkpoint:
            print(f"  rerun with --checkpoint {args.checkpoint} to retry only those")
    return 1 if failures else 0


def add_bulk(
    parser: argparse.ArgumentParser, kind: str, single: Callable[[argparse.Namespace], int] | None
) -> None:
    """Make MEMBER_ID optional and add ``--all``, the filters, ``--concurrency``, ``--checkpoint``."""
    parser.add_argument("--all", action="store_true", help=f"{kind} every portal")
    add_filters(parser)
    parser.add_argument("--concurrency", type=int, default=4, help="portals worked on at once (default 4)")
    parser.add_argument("--checkpoint", metavar="FILE", help="record portals done here; a rerun skips them")

    def dispatch(args: argparse.Namespace) -> int:
        if args.member_id and single is not None:
            return single(args)
        if args.member_id:
            args.all = False
            target = find_target(args.stack)
            ok, outcome = make_action(kind, args, target)(args.member_id)
            print(f"{kind} {args.member_id}: {outcome}", file=sys.stdout if ok else sys.stderr)
            return 0 if ok else 1
        return run_bulk(kind, args)

    parser.set_defaults(func=dispatch)


def register(portals: Any) -> None:
    p = portals.add_parser(
        "rebind", help="make a portal's offline event bindings again now (one portal, --all or a filter)"
    )
    p.add_argument("member_id", nargs="?")
    p.add_argument("--json", action="store_true")
    add_bulk(p, "rebind", None)
