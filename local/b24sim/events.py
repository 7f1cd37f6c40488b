"""Turning a change on a portal into event deliveries and offline-queue records.

Rules reproduced from api-reference/events/index.md and offline-events.md:

* one POST per online binding of the event, never retried; nothing is sent while a UI app has not called
  ``installFinish``;
* ``auth`` always carries domain, client_endpoint, server_endpoint, member_id and application_token; the
  OAuth part (access_token, expires_in, scope, status) only when a user can be tied to the change - the one
  who made it, or the one named by the binding's ``auth_type``. ``refresh_token`` is not sent with
  ordinary events;
* offline bindings keep one record per changed object per queue; a change made with the same
  ``auth_connector`` as the binding is not recorded (the cycle breaker); new records trigger
  ONOFFLINEEVENT, at most once per ``options[minTimeout]`` seconds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from b24sim.catalog import EVENTS

if TYPE_CHECKING:
    from b24sim.portal import Portal
    from b24sim.simulator import Simulator

log = logging.getLogger("b24sim.events")


def base_auth(sim: Simulator, portal: Portal) -> dict[str, Any]:
    """The part of ``auth`` every event carries (what an outgoing webhook gets, too)."""
    return {
        "domain": portal.domain,
        "client_endpoint": portal.client_endpoint,
        "server_endpoint": sim.server_endpoint,
        "member_id": portal.member_id,
        "application_token": portal.app.application_token if portal.app else "",
    }


def user_auth(
    sim: Simulator, portal: Portal, event: str, user_id: int, refresh_token: str | None = None
) -> dict[str, Any]:
    """``auth`` for a change tied to a user: a fresh access token for that user, in the documented order."""
    assert portal.app is not None
    info = EVENTS.get(event)
    scope = info.scope if info and info.scope else ",".join(portal.app.scope)
    token = sim.tokens.issue_access(portal.member_id, user_id, portal.app.scope)
    auth: dict[str, Any] = {
        "access_token": token.value,
        "expires_in": "3600",
        "scope": scope,
        "domain": portal.domain,
        "server_endpoint": sim.server_endpoint,
        "status": portal.app.status,
        "client_endpoint": portal.client_endpoint,
        "member_id": portal.member_id,
    }
    if refresh_token is not None:
        auth["refresh_token"] = refresh_token
    auth["application_token"] = portal.app.application_token
    return auth


def fire(
    sim: Simulator,
    portal: Portal,
    event: str,
    data: Any,
    *,
    user_id: int | None,
    connector: str = "",
) -> None:
    """Dispatch one event occurrence. Call with ``sim.lock`` held; sending happens in the queue's threads."""
    event = event.upper()
    app = portal.app
    _fire_outgoing_webhooks(sim, portal, event, data)
    if app is None or not portal.has_event(event):
        return
    ts = str(int(sim.clock.now()))
    for binding in [b for b in portal.bindings if b.event == event and not b.offline]:
        if not app.installed:
            sim.queue.record_suppressed(portal.domain, event, binding.handler, binding.id)
            continue
        acting = binding.auth_type or user_id
        auth = user_auth(sim, portal, event, acting) if acting else base_auth(sim, portal)
        payload = {"event": event, "event_handler_id": binding.id, "data": data, "ts": ts, "auth": auth}
        sim.queue.submit(portal.domain, event, binding.handler, payload, binding.id)
    _record_offline(sim, portal, event, data, connector)


def _fire_outgoing_webhooks(sim: Simulator, portal: Portal, event: str, data: Any) -> None:
    """Outgoing webhooks go through the same (blockable) queue; their auth carries their own token."""
    if not portal.has_event(event):
        return
    for handler, events, token in portal.outgoing_webhooks:
        if event not in events:
            continue
        auth = {**base_auth(sim, portal), "application_token": token}
        payload = {"event": event, "event_handler_id": 0, "data": data, "ts": str(int(sim.clock.now()))}
        sim.queue.submit(portal.domain, event, handler, {**payload, "auth": auth}, None)


def _record_offline(sim: Simulator, portal: Portal, event: str, data: Any, connector: str) -> None:
    queues = {b.auth_connector for b in portal.bindings if b.event == event and b.offline}
    recorded = False
    for queue_key in queues:
        if queue_key and queue_key == connector:
            continue
        recorded |= portal.record_offline(
            event, data if isinstance(data, dict) else {}, queue_key, sim.clock.now()
        )
    if recorded and event != "ONOFFLINEEVENT":
        _notify_offline(sim, portal)


def _notify_offline(sim: Simulator, portal: Portal) -> None:
    app = portal.app
    if app is None or not app.installed:
        return
    now = sim.clock.now()
    for binding in [b for b in portal.bindings if b.event == "ONOFFLINEEVENT" and not b.offline]:
        try:
            min_timeout = float((binding.options or {}).get("minTimeout", 1))
        except (TypeError, ValueError):
            min_timeout = 1.0
        if now - binding.last_notified < min_timeout:
            continue
        binding.last_notified = now
        user = binding.auth_type or app.installer_id
        # onOfflineEvent is one of the few events documented to carry a refresh_token.
        _, refresh = sim.tokens.issue_pair(portal.member_id, user, app.scope)
        auth = user_auth(sim, portal, "ONOFFLINEEVENT", user, refresh_token=refresh.value)
        payload = {
            "event": "ONOFFLINEEVENT",
            "event_handler_id": binding.id,
            "data": [],
            "ts": str(int(now)),
            "auth": auth,
        }
        sim.queue.submit(portal.domain, "ONOFFLINEEVENT", binding.handler, payload, binding.id)
