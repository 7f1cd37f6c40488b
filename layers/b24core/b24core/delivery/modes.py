"""The delivery route's modes, the triggers that move it, and the one table of moves.

Every detector (the delivery probe, the change audit, the offline bindings, an operator, a webhook
connection) names a ``Trigger``; ``next_mode`` is the only answer to where it takes a portal
(``IllegalTransition`` for a move the table does not have). docs/delivery.md draws it.
"""

from __future__ import annotations

from enum import StrEnum

from b24core.portals.states import IllegalTransition


class DeliveryMode(StrEnum):
    ONLINE = "online"
    PULL = "pull"
    LOSSLESS = "lossless"
    WEBHOOK = "webhook"  # a webhook-connected portal's outgoing webhook brings its events
    POLLING = "polling"  # no events expected: the change audit lists every change each minute


class ProbeOutcome(StrEnum):
    NONE = "none"  # never probed
    PENDING = "pending"  # event.test sent, ONAPPTEST not here yet
    ARRIVED = "arrived"
    MISSED = "missed"  # not here in time: delivery blocked
    FAILED = "failed"  # the probe could not be sent (the portal refused or did not answer)
    DEFERRED = "deferred"  # sent before the install was finished: proves nothing, sent again soon


class Trigger(StrEnum):
    PROBE_MISSED = "probe_missed"
    PROBE_ARRIVED = "probe_arrived"
    LOSSLESS_ON = "lossless_on"
    LOSSLESS_OFF = "lossless_off"  # while delivery works
    LOSSLESS_OFF_BLOCKED = "lossless_off_blocked"  # while the last probe says delivery is blocked
    AUDIT_MISSED = "audit_missed"  # the change audit found changes with no event, audit after audit
    EVENTS_SEEN = "events_seen"  # the audit found a polled portal's changes delivered by events again
    BIND_REFUSED = "bind_refused"  # the portal refused offline bindings: nothing to pull
    BIND_MADE = "bind_made"
    OUTGOING_ON = "outgoing_on"  # a webhook portal's admin set an outgoing webhook
    OUTGOING_OFF = "outgoing_off"
    WEBHOOK_GONE = "webhook_gone"  # disconnected: OAuth again, the probe finds out how events come


M, T = DeliveryMode, Trigger
MODE_TRANSITIONS: dict[tuple[DeliveryMode, Trigger], DeliveryMode] = {
    # the change audit, for every portal
    (M.ONLINE, T.AUDIT_MISSED): M.PULL,
    (M.PULL, T.AUDIT_MISSED): M.PULL,
    (M.LOSSLESS, T.AUDIT_MISSED): M.LOSSLESS,
    (M.POLLING, T.AUDIT_MISSED): M.POLLING,
    (M.WEBHOOK, T.AUDIT_MISSED): M.POLLING,
    (M.WEBHOOK, T.EVENTS_SEEN): M.WEBHOOK,
    (M.POLLING, T.EVENTS_SEEN): M.WEBHOOK,  # only fired for a portal with an outgoing webhook
    # offline bindings (OAuth portals): refused ones leave the portal polled until they are made
    (M.PULL, T.BIND_REFUSED): M.POLLING,
    (M.LOSSLESS, T.BIND_REFUSED): M.LOSSLESS,
    (M.POLLING, T.BIND_REFUSED): M.POLLING,
    (M.POLLING, T.BIND_MADE): M.PULL,
    (M.PULL, T.BIND_MADE): M.PULL,
    (M.LOSSLESS, T.BIND_MADE): M.LOSSLESS,
    (M.POLLING, T.PROBE_MISSED): M.POLLING,
    (M.POLLING, T.PROBE_ARRIVED): M.ONLINE,
    (M.POLLING, T.LOSSLESS_ON): M.LOSSLESS,
    (M.POLLING, T.LOSSLESS_OFF): M.ONLINE,
    (M.POLLING, T.LOSSLESS_OFF_BLOCKED): M.POLLING,
    # webhook-connected portals: connected with an outgoing webhook or without, and disconnected
    **{(m, T.OUTGOING_ON): M.WEBHOOK for m in M},
    **{(m, T.OUTGOING_OFF): M.POLLING for m in M},
    **{(m, T.WEBHOOK_GONE): M.ONLINE for m in M},
    # the delivery probe and the operator (OAuth portals)
    (M.ONLINE, T.PROBE_MISSED): M.PULL,
    (M.PULL, T.PROBE_MISSED): M.PULL,
    (M.LOSSLESS, T.PROBE_MISSED): M.LOSSLESS,
    (M.ONLINE, T.PROBE_ARRIVED): M.ONLINE,
    (M.PULL, T.PROBE_ARRIVED): M.ONLINE,
    (M.LOSSLESS, T.PROBE_ARRIVED): M.LOSSLESS,
    (M.ONLINE, T.LOSSLESS_ON): M.LOSSLESS,
    (M.PULL, T.LOSSLESS_ON): M.LOSSLESS,
    (M.LOSSLESS, T.LOSSLESS_ON): M.LOSSLESS,
    (M.LOSSLESS, T.LOSSLESS_OFF): M.ONLINE,
    (M.LOSSLESS, T.LOSSLESS_OFF_BLOCKED): M.PULL,
    (M.ONLINE, T.LOSSLESS_OFF): M.ONLINE,
    (M.ONLINE, T.LOSSLESS_OFF_BLOCKED): M.PULL,
    (M.PULL, T.LOSSLESS_OFF): M.ONLINE,
    (M.PULL, T.LOSSLESS_OFF_BLOCKED): M.PULL,
}
del M, T


def next_mode(current: DeliveryMode, trigger: Trigger) -> DeliveryMode:
    try:
        return MODE_TRANSITIONS[(current, trigger)]
    except KeyError:
        raise IllegalTransition(f"delivery mode {current} does not change on {trigger}") from None
