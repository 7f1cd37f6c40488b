"""What a handler receives and how handlers are kept: typed events, a context per call, a registry.

An app declares its handlers on ``b24core.B24App`` (b24core/app.py); the worker dispatches through the
registry kept here. A handler belongs to a manifest feature; the worker runs it only where the
capability check did not find that feature missing, and it starts running by itself once a re-check
finds the feature there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from b24core.capabilities.report import has_feature
from b24core.events.message import QueuedEvent
from b24core.portals.app_data import AppStorage
from b24core.portals.model import Portal
from b24core.tokens.client import BatchResult


class RestClient(Protocol):
    """A portal's REST, as every handler, hook and page gets it (tokens and budget handled)."""

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any: ...
    def batch(self, commands: dict[str, tuple[str, dict[str, Any]]], halt: bool = False) -> BatchResult: ...


@dataclass(frozen=True)
class Event:
    name: str
    member_id: str
    domain: str
    data: dict[str, Any] = field(default_factory=dict)
    ts: str = ""
    user_id: str = ""
    source: str = "online"
    #: The changed object, read by the worker when the handler declared ``read=`` (coalesced per object).
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
        """The changed object's ID: ``FIELDS.ID`` (CRM), ``FIELDS_AFTER.ID`` (tasks), or for a deleted
        task ``FIELDS_BEFORE.ID`` (its FIELDS_AFTER is the string "undefined")."""
        for key in ("FIELDS", "FIELDS_AFTER", "FIELDS_BEFORE"):
            fields = self.data.get(key)
            if isinstance(fields, dict) and fields.get("ID") is not None:
                return str(fields["ID"])
        return None


@dataclass(frozen=True)
class PageUser:
    """Who opened a page: from the signed user session (b24core.trust.session), never a token."""

    user_id: str
    admin: bool
    placement: str
    #: PLACEMENT_OPTIONS as Bitrix24 sent them (e.g. {"ID": "42"} in a CRM card tab).
    options: dict[str, Any]
    language: str


@dataclass
class Context:
    """Everything a handler, hook or page gets for one portal."""

    portal: Portal
    #: The portal's REST (a RestClient): its own client, or in the worker the budgeted one; None in
    #: @app.uninstalled hooks (the tokens are gone).
    client: Any
    storage_factory: Callable[[str], AppStorage] | None = None
    user: PageUser | None = None
    _storage: AppStorage | None = field(default=None, repr=False)

    @property
    def storage(self) -> AppStorage:
        """The app's own data for this portal (made on first use)."""
        if self._storage is None:
            if self.storage_factory is None:
                raise RuntimeError("no app storage is wired for this context")
            self._storage = self.storage_factory(self.portal.member_id)
        return self._storage

    def has_feature(self, name: str) -> bool:
        """False only when the last capability check found the feature missing on this portal; a
        portal not checked yet, or whose check could not tell, does not withhold work."""
        return has_feature(self.portal.capabilities, name)


Handler = Callable[[Event, Context], None]


@dataclass(frozen=True)
class Registration:
    handler: Handler
    feature: str | None
    #: REST method that reads the changed object by ``id`` (``read=`` of B24App.event). Declaring it lets the
    #: worker coalesce repeated events of one object and read many objects in one `batch` call. Such a
    #: handler sees the object's state, not every event: of several events of one object in a batch only
    #: the latest is dispatched, and an event whose change an earlier read already saw (portal time,
    #: worker/read_marks.py) is not dispatched again.
    fetch: str | None = None
    #: True when running the handler twice for one event is harmless (it writes the object's state, not
    #: a delta): it then runs outside the once-per-event guard, which costs table writes per event.
    idempotent: bool = False


class Registry:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Registration]] = {}
        #: Builds a portal's app storage for the contexts the worker makes (set by the wiring).
        self.storage_factory: Callable[[str], AppStorage] | None = None

    def add(self, event: str, registration: Registration) -> None:
        self._handlers.setdefault(event.upper(), []).append(registration)

    def on(
        self, *events: str, feature: str | None = None, fetch: str | None = None, idempotent: bool = False
    ) -> Callable[[Handler], Handler]:
        """Register a handler without a manifest (tests, tools); apps use ``B24App.event``, which
        takes the feature from the manifest and refuses names that could never be bound."""

        def decorate(fn: Handler) -> Handler:
            for name in events:
                self.add(name, Registration(fn, feature, fetch, idempotent))
            return fn

        return decorate

    def fetch_method(self, event: str) -> str | None:
        """The read method declared for this event (the first handler that declares one)."""
        return next((r.fetch for r in self._handlers.get(event.upper(), []) if r.fetch), None)

    def events(self) -> list[str]:
        return sorted(self._handlers)

    def handlers_for(self, event: str) -> list[Registration]:
        return list(self._handlers.get(event.upper(), []))

    def __iter__(self) -> Iterator[tuple[str, Registration]]:
        for event, registrations in sorted(self._handlers.items()):
            for reg in registrations:
                yield event, reg

    def dispatch(self, event: Event, ctx: Context, *, idempotent: bool | None = None) -> int:
        """Run the event's handlers whose feature the portal has; return how many ran. With
        ``idempotent`` set, only the handlers whose declaration matches it run."""
        if ctx.storage_factory is None:
            ctx.storage_factory = self.storage_factory
        ran = 0
        for reg in self.handlers_for(event.name):
            if idempotent is not None and reg.idempotent != idempotent:
                continue
            if reg.feature and not ctx.has_feature(reg.feature):
                continue
            reg.handler(event, ctx)
            ran += 1
        return ran
