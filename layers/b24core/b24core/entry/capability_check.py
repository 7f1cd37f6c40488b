"""CapabilityCheckFunction: a check of one portal, or the re-checks that are due, wired from settings."""

from __future__ import annotations

import time
from logging import ERROR
from typing import Any

from b24core.aws import metrics
from b24core.aws.logs import log_event
from b24core.capabilities.report import CapabilityReport
from b24core.capabilities.runner import CapabilityRunner
from b24core.entry import wiring as runtime
from b24core.portals.model import Portal
from b24core.worker.handlers import Context


def _runner() -> CapabilityRunner:
    from b24core.aws.settings import get_settings
    from b24core.capabilities.isolation import diagnose_client
    from b24core.capabilities.manifest import load_manifest
    from b24core.entry import wiring as runtime
    from b24core.entry.offline_pull import after_capability_check

    s = get_settings()
    return CapabilityRunner(
        portals=runtime.portal_store(),
        caps=runtime.capability_store(),
        manifest=load_manifest(),
        make_client=lambda portal, timeout: runtime.portal_client(portal, timeout),
        recheck_interval_s=s.recheck_interval_s,
        recheck_soon_s=s.recheck_soon_s,
        http_timeout_s=s.http_timeout_s,
        after_check=after_capability_check,
        diagnose=lambda client, exc: diagnose_client(client, exc, runtime.auth_server()),
        on_checked=run_app_hooks,
        budget=lambda member_id, cost: runtime.rate_limiter().acquire(member_id, cost=cost),
    )


def handle_capability_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    from b24core.aws.settings import get_settings
    from b24core.entry import wiring as runtime

    action = event.get("action")
    runner = _runner()
    default_url = runtime.events_url(get_settings())
    if action == "check" and isinstance(event.get("member_id"), str):
        budget = event.get("budget_s")
        return runner.check(
            event["member_id"],
            str(event.get("events_url") or ""),
            trigger=str(event.get("trigger") or "manual"),
            budget_s=float(budget) if isinstance(budget, int | float) else None,
        )
    if action == "recheck_due":
        deadline = None
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            deadline = time.monotonic() + max(0.0, context.get_remaining_time_in_millis() / 1000 - 15)
        return runner.recheck_due(default_url, deadline)
    return {"error": "unknown_action"}


def run_app_hooks(portal: Portal, client: Any, previous: dict[str, Any], report: dict[str, Any]) -> None:
    """``@app.installed`` after an install's check, ``@app.feature_enabled(name)`` for each feature that
    became available. A hook that fails is logged and counted; the check stands."""
    app = runtime.the_app()
    ctx = Context(portal=portal, client=client, storage_factory=runtime.app_storage)
    hooks: list[tuple[str, Any]] = []
    now = CapabilityReport.of(report)
    if now.trigger == "install":
        hooks += [("installed", h) for h in app.hooks.installed]
    for name in now.newly_available(CapabilityReport.of(previous)):
        hooks += [(f"feature_enabled:{name}", h) for h in app.hooks.feature_enabled.get(name, [])]
    for kind, hook in hooks:
        try:
            hook(ctx)
        except Exception as exc:  # the author's hook: its failure must not undo the check
            metrics.emit("AppHooksFailed", hook=kind.partition(":")[0])
            log_event(ERROR, "app hook failed", "hook", portal.member_id, error=exc, hook=kind)
