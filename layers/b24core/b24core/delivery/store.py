"""Per-portal delivery state: how events reach the app, what the last probe said, the offline queue.

One item per portal beside its record (pk=PORTAL#member_id, sk=DELIVERY), never inside the Portal
record (other parts of the bundle save that one). Saves are optimistic (``version``), like the
portal store's.

Modes and what moves a portal between them (the table is ``MODE_TRANSITIONS``):

* ``online`` — events come through Bitrix24's cloud queue to POST /events;
* ``pull`` — a probe did not arrive: the queue cannot reach us from this portal. Offline bindings are
  made and the portal's offline queue is pulled every minute (and on ONOFFLINEEVENT); a later probe
  that arrives switches the portal back to ``online``;
* ``lossless`` — an operator's choice for any portal: online events AND the offline queue, whatever
  the probes say, until the operator switches it off.

The schedules find their work through gsi1, never by scanning: every live item sits in one of two
partitions — ``DELIVERY#pull`` (offline work to do: pull mode, lossless mode, bindings to remove,
records left to drain) or ``DELIVERY#online`` — sorted by when its next probe is due (or when its
pending probe is judged).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from b24core.delivery.modes import DeliveryMode, ProbeOutcome, Trigger, next_mode
from b24core.portals.keys import DELIVERY_SK, ONLINE_PARTITION, PULL_PARTITION, portal_pk
from b24core.portals.state_items import save_versioned, state_model
from b24core.portals.versioned import InMemoryStateStore, StaleWrite, update

_SAVE_ATTEMPTS = 8
HISTORY_MAX = 20


@dataclass(frozen=True)
class DeliveryState:
    member_id: str
    mode: DeliveryMode = DeliveryMode.ONLINE
    kind: str = ""  # cloud | box | unknown (from the capability check): picks the probe interval
    events_url: str = ""
    #: False once the portal is gone (uninstalled): out of every schedule until it is installed again.
    active: bool = True
    #: How the bundle reaches the portal: "oauth" (the app's tokens) or "webhook" (an incoming webhook:
    #: no delivery probe, no offline queue — those are the app's alone).
    auth: str = "oauth"
    #: A webhook-connected portal whose admin set an outgoing webhook: its events are expected.
    outgoing: bool = False
    #: The last proof that the platform delivers: a probe arrived, or the audit found events.
    last_confirmed_at: int = 0
    #: The route's switches, newest last (at most HISTORY_MAX): when, from, to, why, and the evidence.
    history: tuple[dict[str, Any], ...] = ()
    #: The mode the admin was last told about (once per change).
    told_mode: str = ""
    # ---- probes
    probe_id: str = ""
    probe_sent_at: int = 0
    probe_due_at: int = 0  # when a pending probe is judged
    probe_outcome: ProbeOutcome = ProbeOutcome.NONE
    probe_reason: str = ""
    last_arrived_at: int = 0
    next_probe_at: int = 0
    misses: int = 0
    blocked_since: int = 0
    reason: str = ""  # why the mode is what it is
    mode_changed_at: int = 0
    notified_at: int = 0  # the admin was told about the blocked queue (once per blocked spell)
    notice_reason: str = ""  # why the admin could not be told
    # ---- the offline queue
    offline_bound: bool = False
    offline_events: tuple[str, ...] = ()
    bind_error: str = ""
    bind_retry_at: int = 0  # refused offline bindings are asked for again from then on
    draining: bool = False  # offline bindings removed; records may still wait in the portal's queue
    pending: tuple[str, ...] = ()  # process_ids reserved by event.offline.get and not yet cleared
    run_open: bool = False  # a pull run started and has not finished (a crash leaves it set)
    errors_marked: bool = False  # records marked with event.offline.error wait for a retry
    last_pull_at: int = 0
    last_pull_count: int = 0
    pulled_total: int = 0
    pull_error: str = ""
    version: int = 0

    # ---- transitions
    def on(
        self, trigger: Trigger, now: int, reason: str = "", evidence: dict[str, Any] | None = None
    ) -> DeliveryState:
        target = next_mode(self.mode, trigger)
        if target == self.mode:
            return self
        entry = {
            "at": now,
            "from": str(self.mode),
            "to": str(target),
            "trigger": str(trigger),
            "reason": reason or str(trigger),
            **({"evidence": evidence} if evidence else {}),
        }
        return replace(
            self,
            mode=target,
            mode_changed_at=now,
            reason=reason or str(trigger),
            history=(*self.history, entry)[-HISTORY_MAX:],
        )

    @property
    def degraded(self) -> bool:
        """Events are not expected to arrive by themselves (the admin is told why)."""
        if self.auth == "webhook":
            return self.mode == DeliveryMode.POLLING and self.outgoing
        return self.mode in (DeliveryMode.PULL, DeliveryMode.POLLING)

    @property
    def polled(self) -> bool:
        """The change audit is the delivery itself: every minute, nothing waits for a grace period."""
        return self.mode == DeliveryMode.POLLING

    @property
    def blocked(self) -> bool:
        return self.blocked_since > 0

    @property
    def wants_offline(self) -> bool:
        offline = (DeliveryMode.PULL, DeliveryMode.LOSSLESS, DeliveryMode.POLLING)
        return self.auth == "oauth" and self.mode in offline

    @property
    def has_offline_work(self) -> bool:
        return (
            self.wants_offline
            or self.offline_bound
            or self.draining
            or bool(self.pending)
            or (self.errors_marked)
        )

    @property
    def due_at(self) -> int:
        return self.probe_due_at if self.probe_outcome == ProbeOutcome.PENDING else self.next_probe_at

    def index_keys(self) -> tuple[str | None, str | None]:
        if not self.active or self.auth == "webhook":  # no probe, no offline queue: the audit's alone
            return None, None
        partition = PULL_PARTITION if self.has_offline_work else ONLINE_PARTITION
        return partition, f"{max(0, int(self.due_at)):012d}#{self.member_id}"

    def public_view(self) -> dict[str, Any]:
        """What an operator sees (no secrets live here at all)."""
        return {
            "mode": str(self.mode),
            "auth": self.auth,
            "kind": self.kind,
            "last_confirmed_at": self.last_confirmed_at,
            "switches": len(self.history),
            "reason": self.reason,
            "mode_changed_at": self.mode_changed_at,
            "blocked_since": self.blocked_since,
            "probe": {
                "outcome": str(self.probe_outcome),
                "sent_at": self.probe_sent_at,
                "due_at": self.probe_due_at,
                "last_arrived_at": self.last_arrived_at,
                "next_at": self.next_probe_at,
                "misses": self.misses,
                "reason": self.probe_reason,
            },
            "offline": {
                "bound": self.offline_bound,
                "events": list(self.offline_events),
                "bind_error": self.bind_error,
                "draining": self.draining,
                "reserved": len(self.pending),
                "errors_marked": self.errors_marked,
                "last_pull_at": self.last_pull_at,
                "last_pull_count": self.last_pull_count,
                "pulled_total": self.pulled_total,
                "pull_error": self.pull_error,
            },
            "admin_notified_at": self.notified_at,
            "admin_notice_problem": self.notice_reason,
            "active": self.active,
        }


class DeliveryStore(Protocol):
    def get(self, member_id: str) -> DeliveryState | None: ...

    def save(self, state: DeliveryState) -> DeliveryState:
        """Create (version 0) or update (the version read); raises StaleWrite otherwise."""
        ...

    def due(self, partition: str, now: int, limit: int = 100) -> list[str]:
        """member_ids in ``partition`` whose probe (or probe verdict) is due at ``now``, earliest first."""
        ...

    def members(self, partition: str, limit: int = 1000) -> list[str]:
        """Every member_id in ``partition`` (the pull schedule's work list)."""
        ...


def mutate(
    store: DeliveryStore,
    member_id: str,
    change: Callable[[DeliveryState], DeliveryState | None],
    attempts: int = _SAVE_ATTEMPTS,
) -> DeliveryState:
    """Read (or start) the portal's state, apply ``change`` and save, re-reading on a stale write.
    ``change`` returning None means "nothing to save"."""
    saved = update(
        lambda: store.get(member_id) or DeliveryState(member_id),
        store.save,
        lambda current: change(current) if current is not None else None,
        member_id,
        attempts,
    )
    return saved or DeliveryState(member_id)


class InMemoryDeliveryStore(InMemoryStateStore[DeliveryState]):
    """Same contract as the DynamoDB store, for unit tests."""

    def _rows(self, partition: str) -> list[tuple[str, str]]:
        rows = []
        for state in list(self._items.values()):
            pk, sk = state.index_keys()
            if pk == partition and sk is not None:
                rows.append((sk, state.member_id))
        return sorted(rows)

    def due(self, partition: str, now: int, limit: int = 100) -> list[str]:
        bound = f"{now + 1:012d}"
        return [m for sk, m in self._rows(partition) if sk < bound][:limit]

    def members(self, partition: str, limit: int = 1000) -> list[str]:
        return [m for _, m in self._rows(partition)][:limit]


# ---------------------------------------------------------------- DynamoDB
_ENUMS: dict[str, Callable[[Any], Any]] = {"mode": DeliveryMode, "probe_outcome": ProbeOutcome}
_TUPLES = ("offline_events", "pending", "history")


def _encode(state: DeliveryState) -> str:
    raw = {k: v for k, v in state.__dict__.items() if k not in ("member_id", "version")}
    return json.dumps(
        {k: (list(v) if isinstance(v, tuple) else str(v) if k in _ENUMS else v) for k, v in raw.items()},
        sort_keys=True,
    )


def _decode(member_id: str, text: str, version: int) -> DeliveryState:
    raw = json.loads(text) if text else {}
    known = set(DeliveryState.__dataclass_fields__) - {"member_id", "version"}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            continue  # a field from a newer version of the bundle: ignore it
        if key in _ENUMS:
            try:
                value = _ENUMS[key](value)
            except ValueError:
                continue
        elif key == "history":
            value = tuple(v for v in value or () if isinstance(v, dict))
        elif key in _TUPLES:
            value = tuple(str(v) for v in value or ())
        values[key] = value
    return DeliveryState(member_id=member_id, version=version, **values)


class DynamoDeliveryStore:
    """Delivery items in the app's table (template.yaml: AppTable)."""

    def __init__(self, table_name: str, region: str, host: str | None = None) -> None:
        self._model = state_model(table_name, region, host)

    def get(self, member_id: str) -> DeliveryState | None:
        try:
            item = self._model.get(portal_pk(member_id), DELIVERY_SK, consistent_read=True)
        except self._model.DoesNotExist:
            return None
        return _decode(member_id, item.state, int(item.version or 0))

    def save(self, state: DeliveryState) -> DeliveryState:
        gsi1pk, gsi1sk = state.index_keys()
        item = self._model(
            portal_pk(state.member_id),
            DELIVERY_SK,
            gsi1pk=gsi1pk,
            gsi1sk=gsi1sk,
            member_id=state.member_id,
            state=_encode(state),
        )
        if state.version:
            item.version = state.version
        save_versioned(item, state.member_id)  # StaleWrite, or NewerItem over a newer release's item
        return replace(state, version=int(item.version or 0))

    def due(self, partition: str, now: int, limit: int = 100) -> list[str]:
        items = self._model.index.query(
            partition, self._model.gsi1sk < f"{now + 1:012d}", limit=limit, page_size=limit
        )
        return [str(i.member_id) for i in items]

    def members(self, partition: str, limit: int = 1000) -> list[str]:
        items = self._model.index.query(partition, limit=limit, page_size=min(limit, 500))
        return [str(i.member_id) for i in items]

    def delete(self, member_id: str) -> None:
        self._model(portal_pk(member_id), DELIVERY_SK).delete()


def webhook_connected(store: DeliveryStore, member_id: str, outgoing: bool, now: int) -> DeliveryState:
    """A portal now reached by an incoming webhook: events by its outgoing webhook, or polled."""
    trigger = Trigger.OUTGOING_ON if outgoing else Trigger.OUTGOING_OFF
    why = "connected with an outgoing webhook" if outgoing else "connected without an outgoing webhook"

    def connected(s: DeliveryState) -> DeliveryState:
        base = replace(s, auth="webhook", outgoing=outgoing, active=True, told_mode="")
        if s.auth == "webhook" and s.outgoing == outgoing:
            return replace(base, told_mode=s.told_mode)  # the same connection again: the route stands
        return replace(base.on(trigger, now, why), told_mode="" if outgoing else str(DeliveryMode.POLLING))

    return mutate(store, member_id, connected)


def webhook_disconnected(store: DeliveryStore, member_id: str, now: int) -> DeliveryState:
    return mutate(
        store,
        member_id,
        lambda s: (
            replace(s.on(Trigger.WEBHOOK_GONE, now, "webhook disconnected"), auth="oauth", outgoing=False)
            if s.auth == "webhook"
            else None
        ),
    )


def as_dict(state: DeliveryState) -> dict[str, Any]:
    """The state as JSON-able data (the Lambda's answers)."""
    return {"member_id": state.member_id, **state.public_view()}


__all__ = [
    "DELIVERY_SK",
    "ONLINE_PARTITION",
    "PULL_PARTITION",
    "DeliveryState",
    "DeliveryStore",
    "DynamoDeliveryStore",
    "InMemoryDeliveryStore",
    "StaleWrite",
    "as_dict",
    "mutate",
]
