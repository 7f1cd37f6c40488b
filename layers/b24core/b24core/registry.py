"""Where an app plugs in: handlers registered by event name, called with a typed event and a
REST client bound to the event's portal.

    from b24core.registry import registry

    @registry.on("ONCRMDEALUPDATE", feature="crm")
    def on_deal(event: Event, ctx: HandlerContext) -> None:
        deal = ctx.client.call("crm.deal.get", {"id": event.object_id})
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
        features = self.portal.capabilities.get("features")
        if not isinstance(features, dict):
            return True  # not checked yet: do not withhold work
        info = features.get(name)
        return not isinstance(info, dict) or info.get("available") is not False


Handler = Callable[[Event, HandlerContext], None]


@dataclass(frozen=True)
class Registration:
    handler: Handler
    feature: str | None
    #: REST method that reads the changed object by ``id`` (e.g. "crm.deal.get"). Declaring it lets the
    #: worker coalesce repeated events of one object and read many objects in one `batch` call.
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
