"""Intake: prove the event came from Bitrix24, then buffer it; acknowledge only what is stored.

Bitrix24 never retries a delivery, so a 200 must mean "in SQS". The proof is the application_token
stored for the portal at install (api-reference/events/safe-event-handlers.md), compared in constant
time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from logging import WARNING
from typing import Any, Protocol

from b24core.aws.apigw import HttpError
from b24core.aws.logs import log_event, remember_secret
from b24core.bitrix.inbound import EventAuth
from b24core.events.auth_cache import PortalAuth
from b24core.events.message import QueuedEvent, strip_tokens
from b24core.portals.sealing import token_matches
from b24core.portals.states import PortalState

_EVENT_NAME_MAX = 128
_EVENT_NAME_RE = re.compile(r"^[A-Za-z0-9_.:]+$")
#: Events only the app itself receives: an outgoing webhook's token never proves them.
_APP_ONLY_EVENTS = frozenset({"ONAPPINSTALL", "ONAPPUNINSTALL", "ONAPPUPDATE", "ONAPPTEST", "ONOFFLINEEVENT"})


class PortalLookup(Protocol):
    def get(self, member_id: str, fresh: bool = False) -> PortalAuth | None: ...


class EventSink(Protocol):
    def send(self, message: QueuedEvent) -> None:
        """Store the message durably or raise."""
        ...


@dataclass(frozen=True)
class Accepted:
    event: str
    member_id: str


@dataclass(eq=False)  # a service, compared by identity
class EventIntake:
    portals: PortalLookup
    sink: EventSink
    clock: Callable[[], float] = time.time

    def verify(self, form: dict[str, Any]) -> tuple[str, str]:
        """Return (EVENT, member_id) of an event that proved itself, or raise HttpError."""
        event, member_id, _by_hook = self._verified(form)
        return event, member_id

    def _verified(self, form: dict[str, Any]) -> tuple[str, str, bool]:
        """(EVENT, member_id, proven by the outgoing webhook's token) or HttpError."""
        event = form.get("event")
        auth = EventAuth.of(form)
        if not isinstance(event, str) or not event or len(event) > _EVENT_NAME_MAX:
            raise HttpError(400, "missing_fields", "missing required field: event")
        if not _EVENT_NAME_RE.match(event):
            raise HttpError(400, "bad_field", "event is not an event name")
        if auth is None:
            raise HttpError(401, "missing_auth", "missing auth block")
        member_id, app_token = auth.member_id, auth.application_token
        if not member_id or len(member_id) > 64:
            raise HttpError(401, "missing_auth", "missing auth[member_id]")
        if not app_token:
            self._refuse("missing_application_token", event, member_id)
            raise HttpError(401, "missing_application_token", "missing auth[application_token]")
        portal = self.portals.get(member_id)
        if portal is not None and not _proves(portal, app_token, event):
            portal = self.portals.get(member_id, fresh=True)  # the token may have just been rotated
        if portal is None:
            portal, member_id = self._webhook_alias(auth, app_token, event, member_id)
        if portal is None:
            self._refuse("unknown_portal", event, member_id)
            raise HttpError(401, "unknown_portal", "no installation for this member_id")
        if portal.state == PortalState.DELETED or not (portal.application_token or portal.webhook_token):
            self._refuse("portal_uninstalled", event, member_id)
            raise HttpError(403, "portal_uninstalled", "the app is not installed on this portal")
        if not _proves(portal, app_token, event):
            self._refuse("application_token_mismatch", event, member_id)
            raise HttpError(403, "application_token_mismatch", "application_token does not match")
        remember_secret(app_token)  # proven this portal's: only now may it enter the redaction set
        by_hook = bool(portal.webhook_token) and _same(portal.webhook_token, app_token)
        return event.upper(), member_id, by_hook

    def _webhook_alias(
        self, auth: EventAuth, given: str, event: str, member_id: str
    ) -> tuple[PortalAuth | None, str]:
        """A portal connected only by webhook is stored under an id derived from its REST base (the
        webhook never told us the member_id); its outgoing webhook's events are matched to it there."""
        endpoint = auth.client_endpoint or (f"https://{auth.domain}/rest/" if auth.domain else "")
        if not endpoint:
            return None, member_id
        from b24core.portals.webhook_ids import webhook_member_id

        alias = webhook_member_id(endpoint)
        candidate = self.portals.get(alias)
        if candidate is not None and candidate.webhook_token and _proves(candidate, given, event):
            return candidate, alias
        return None, member_id

    def accept(self, form: dict[str, Any]) -> Accepted:
        event, member_id, _by_hook = self._verified(form)
        message = strip_tokens(form, int(self.clock()))
        if message.member_id != member_id:  # matched through the webhook alias
            message = replace(message, member_id=member_id)
        self.sink.send(message)
        return Accepted(event=event, member_id=member_id)

    @staticmethod
    def _refuse(reason: str, event: str, member_id: str) -> None:
        log_event(WARNING, "event refused", "intake", member_id, "refused", reason=reason, event=event)


def _proves(portal: PortalAuth, given: str, event: str) -> bool:
    """The app's application_token, or the connected outgoing webhook's (its events carry no OAuth);
    the webhook's never proves the app's own lifecycle and delivery events."""
    app_ok = bool(portal.application_token) and _same(portal.application_token, given)
    hook_ok = (
        bool(portal.webhook_token)
        and event.upper() not in _APP_ONLY_EVENTS
        and _same(portal.webhook_token, given)
    )
    return app_ok or hook_ok


def _same(stored: str, given: str) -> bool:
    """Constant time; the table keeps the hash (b24core.portals.sealing), or, from before, the value."""
    return token_matches(stored, given)
