"""Where an app plugs in: handlers registered by event name, called with a typed event and a
REST client bound to the event's portal.

    from b24core.worker.handlers import registry

    @registry.on("ONCRMDEALUPDATE", feature="crm")
    def on_deal(event: Event, ctx: HandlerContext) -> None:
        deal = ctx.client.call("crm.deal.get", {"id": event.object_id})

A handler names the manifest feature it belongs to; the worker runs it only where the capability
check did not find that feature missing, and it starts running by itself once a re-check finds the
feature there. Code that uses an optional feature outside its own events asks ``ctx.has_feature``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from b24core.capabilities.check import has_feature
from b24core.capabilities.manifest import Manifest
from b24core.events.message import QueuedEvent
from b24core.portals.model import Portal


@dataclass(frozen=True)
class Event:
    name: str
    member_id: str
    domain: str
    data: dict[str, Any] = field(default_factory=dict)
    ts: str = ""
    user_id: str = ""
    source: str = "online"
    #: The changed object, read by the worker when the handler declared ``fetch=`` (coalesced per object).
    object: dict[str, Any] | None = None

    @classmethod
    def from_message(cls, message: QueuedEvent) -> Event:
        return cls(
            name=message.event,
            member_id=message.member_id,
            domain=message.domain,
            data=message.data,
            ts=message.ts,
            user_id=message.user_id,
            source=message.source,
        )

    @property
    def object_id(self) -> str | None:
        fields = self.data.get("FIELDS")
        if isinstance(fields, dict) and fields.get("ID") is not None:
            return str(fields["ID"])
        return None


@dataclass
class HandlerContext:
    portal: Portal
    client: Any  # PortalClient, or the worker's rate-limited wrapper with the same call/batch methods

    def has_feature(self, name: str) -> bool:
        """False only when the last capability check found the feature missing on this portal; a
        portal not checked yet, or whose check could not tell, does not withhold work."""
        return has_feature(self.portal.capabilities, name)


Handler = Callable[[Event, HandlerContext], None]


@dataclass(frozen=True)
class Registration:
    handler: Handler
    feature: str | None
    #: REST method that reads the changed object by ``id`` (e.g. "crm.deal.get"). Declaring it lets the
    #: worker coalesce repeated events of one object and read many objects in one `batch` call. Such a
    #: handler sees the object's state, not every event: of several events of one object in a batch only
    #: the latest is dispatched, and an event whose change an earlier read already saw (portal time,
    #: events/read_marks.py) is not dispatched again.
    fetch: str | None = None


class Registry:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Registration]] = {}

    def on(
        self, *events: str, feature: str | None = None, fetch: str | None = None
    ) -> Callable[[Handler], Handler]:
        def decorate(fn: Handler) -> Handler:
            for name in events:
                self._handlers.setdefault(name.upper(), []).append(Registration(fn, feature, fetch))
            return fn

        return decorate

    def fetch_method(self, event: str) -> str | None:
        """The read method declared for this event (the first handler that declares one)."""
        return next((r.fetch for r in self._handlers.get(event.upper(), []) if r.fetch), None)

    def events(self) -> list[str]:
        return sorted(self._handlers)

    def handlers_for(self, event: str) -> list[Registration]:
        return list(self._handlers.get(event.upper(), []))

    def check(self, manifest: Manifest) -> list[str]:
        """Problems between the handlers and the manifest: a feature it does not declare, or an
        event outside the handler's feature (which would be bound only by chance)."""
        problems = []
        for event, registrations in sorted(self._handlers.items()):
            for reg in registrations:
                if reg.feature is None:
                    continue
                feature = manifest.feature(reg.feature)
                if feature is None:
                    problems.append(
                        f"{event}: handler {reg.handler.__name__} names unknown feature {reg.feature!r}"
                    )
                elif event not in feature.events:
                    problems.append(
                        f"{event}: not an event of feature {reg.feature!r} in the manifest "
                        f"(handler {reg.handler.__name__})"
                    )
        return problems

    def dispatch(self, event: Event, ctx: HandlerContext) -> int:
        """Run every handler for the event whose feature the portal has; return how many ran."""
        ran = 0
        for reg in self.handlers_for(event.name):
            if reg.feature and not ctx.has_feature(reg.feature):
                continue
            reg.handler(event, ctx)
            ran += 1
        return ran


registry = Registry()
