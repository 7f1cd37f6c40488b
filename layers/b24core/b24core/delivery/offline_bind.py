"""The portal's offline event bindings (``event.bind event_type=offline``), kept in step with the
delivery mode: bound while the portal is pulled (or lossless), unbound when it goes back online.
Refused bindings are asked for again after BIND_RETRY_S."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from logging import INFO, WARNING
from typing import Any

from b24core.aws.logs import log_event
from b24core.aws.settings import DeliveryPolicy
from b24core.delivery.store import DeliveryState, DeliveryStore, mutate
from b24core.events.signals import WAKE_EVENT
from b24core.portals.model import Portal

BIND_RETRY_S = 900  # offline bindings the portal refused are asked for again after this long


# ---------------------------------------------------------------- which events go offline
def offline_events(manifest_events: Iterable[tuple[str, bool]]) -> list[str]:
    """Events to bind offline: those of every feature not known missing (``(event, missing)`` pairs)."""
    return sorted({e.upper() for e, missing in manifest_events if not missing})


def feature_events(manifest: Any, capabilities: dict[str, Any]) -> list[str]:
    from b24core.capabilities.report import Status, feature_status

    pairs = [
        (event, feature_status(capabilities, f.name) == Status.MISSING)
        for f in manifest.features
        for event in f.events
    ]
    return offline_events(pairs)


def error_code(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("error") or "ERROR")
    code = getattr(error, "code", None)
    return str(code) if code else type(error).__name__


def _already(error: Any) -> bool:
    return isinstance(error, dict) and "already" in str(error.get("error_description", "")).lower()


def reconcile_bindings(
    store: DeliveryStore,
    policy: DeliveryPolicy,
    now: int,
    client: Any,
    portal: Portal,
    state: DeliveryState,
    events: list[str],
) -> DeliveryState:
    """Make the portal's offline bindings match the mode (one batch request when anything is due)."""
    events_url = state.events_url
    connector = policy.auth_connector
    now = now
    if state.wants_offline and not state.offline_bound and now >= state.bind_retry_at:
        commands: dict[str, tuple[str, dict[str, Any]]] = {
            f"off_{e}": ("event.bind", {"event": e, "event_type": "offline", "auth_connector": connector})
            for e in events
        }
        if events_url:
            commands["wake"] = (
                "event.bind",
                {
                    "event": WAKE_EVENT,
                    "handler": events_url,
                    "options": {"minTimeout": policy.offline_notify_min_s},
                },
            )
        bound: list[str] = []
        failures: dict[str, str] = {}
        try:
            answer = client.batch(commands)
            for e in events:
                err = answer["error"].get(f"off_{e}")
                if f"off_{e}" in answer["result"] or _already(err):
                    bound.append(e)
                else:
                    failures[e] = error_code(err) if err else "NO_ANSWER"
        except Exception as exc:
            if is_budget(exc):
                raise
            failures = {e: error_code(exc) for e in events}
        error = ",".join(sorted(set(failures.values())))
        if failures and "ACCESS_DENIED" in failures.values():
            error = "ACCESS_DENIED: offline events need the app installed by a portal administrator"
        log_event(
            INFO,
            "offline bindings made" if bound else "offline bindings failed",
            "offline_bind",
            portal.member_id,
            "bound" if bound else "failed",
            events=bound,
            reason=error or None,
        )
        return mutate(
            store,
            portal.member_id,
            lambda s: replace(
                s,
                offline_bound=bool(bound),
                offline_events=tuple(bound),
                bind_error=error,
                bind_retry_at=0 if bound else now + BIND_RETRY_S,
                draining=False,
            ),
        )
    if not state.wants_offline and state.offline_bound:
        commands = {
            f"off_{e}": ("event.unbind", {"event": e, "event_type": "offline"})
            for e in (state.offline_events or tuple(events))
        }
        if events_url:
            commands["wake"] = ("event.unbind", {"event": WAKE_EVENT, "handler": events_url})
        try:
            client.batch(commands)
        except Exception as exc:
            if is_budget(exc):
                raise
            log_event(WARNING, "offline bindings not removed", "offline_unbind", portal.member_id, "failed")
            return state  # tried again by the next run
        log_event(INFO, "offline bindings removed", "offline_unbind", portal.member_id, "ok")
        return mutate(
            store,
            portal.member_id,
            lambda s: replace(s, offline_bound=False, offline_events=(), bind_error="", draining=True),
        )
    return state


def is_budget(exc: Exception) -> bool:
    return type(exc).__name__ in ("QueryLimitExceeded", "OperationTimeLimit", "BudgetSpent")
