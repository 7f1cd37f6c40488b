"""One simulated Bitrix24 portal: its modules, users, deals, app installation and event bindings.

A portal is created with a profile (``cloud`` or ``box``) that fixes its starting module and method set;
tests then change it the way an admin would (``enable_module`` after a box update, ``remove_method`` to
play an old version). User actions in the portal UI (``ui_deal_*``) fire events with the acting user's
tokens, as a real portal does for changes a user caused.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from b24sim.catalog import EVENTS, METHODS, MODULE_SCOPES, PLACEMENTS, PROFILES, SCOPE_ALIASES, Profile
from b24sim.crm import EntityStore
from b24sim.entities import SPECS
from b24sim.misbehave import Misbehaviour
from b24sim.ratelimit import LeakyBucket, OperatingTracker

if TYPE_CHECKING:
    from b24sim.simulator import Simulator


@dataclass
class User:
    id: int
    name: str
    last_name: str = ""
    admin: bool = False


@dataclass
class Installation:
    """The simulated app as installed on one portal."""

    application_token: str = field(repr=False)
    version: int
    status: str
    scope: tuple[str, ...]
    installed: bool
    installer_id: int
    app_id: int
    code: str


@dataclass
class Binding:
    """An ``event.bind`` registration."""

    id: int
    event: str
    handler: str
    auth_type: int
    offline: bool
    auth_connector: str
    options: dict[str, Any]
    user_id: int
    last_notified: float = float("-inf")


@dataclass
class OfflineRecord:
    """One entry of the offline event queue (the latest state of one changed object)."""

    id: int
    timestamp: float
    event: str
    data: dict[str, Any]
    message_id: str
    connector: str
    process_id: str = ""
    error: bool = False


class Portal:
    """State of one portal. Mutate it only while holding ``sim.lock`` (the UI helpers do that)."""

    def __init__(
        self,
        sim: Simulator,
        domain: str,
        profile: str,
        member_id: str | None,
        rate: tuple[float, float],
        language: str,
        queue_blocked: bool,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; use one of {sorted(PROFILES)}")
        self._sim = sim
        self.domain = domain
        self.profile: str = profile
        self.profile_info: Profile = PROFILES[profile]
        self.member_id = member_id or secrets.token_hex(16)
        self.language = language
        #: Events from this portal cannot reach the cloud queue servers (a box behind a firewall).
        self.queue_blocked = queue_blocked
        #: The authorization server refuses new tokens for this portal (subscription expired).
        self.payment_required = False
        #: Answer every REST call with 500 PORTAL_DELETED.
        self.deleted = False
        #: Per-method accumulated-time limit (seconds per 10 minutes); ``None`` = no limit.
        self.operating_limit_s: float | None = None
        #: Extra simulated execution seconds charged per call of a method (to reach the limit quickly).
        self.method_cost: dict[str, float] = {}
        #: Methods that fail with this error code (also inside ``batch``: a partial batch failure).
        self.failing_methods: dict[str, str] = {}
        #: Deals whose reads always fail (a poison event for the app's worker).
        self.poison_deals: set[int] = set()
        #: Seconds every REST request waits before it is answered (a slow or overloaded box).
        self.rest_latency_s = 0.0
        #: The box cannot reach the authorization server: OAuth REST calls fail with an authorization
        #: error (the portal cannot check the token), incoming-webhook calls still work.
        self.auth_server_blocked = False
        #: A box that answers badly (b24sim.misbehave): garbage numbers, slow, dripping or huge answers.
        self.misbehave = Misbehaviour()
        #: Incoming webhooks: code -> (user_id, scopes).
        self.incoming_webhooks: dict[str, tuple[int, tuple[str, ...]]] = {}
        #: Outgoing webhooks: (handler URL, events, application token); delivered through the queue.
        self.outgoing_webhooks: list[tuple[str, tuple[str, ...], str]] = []
        self.modules: set[str] = set(self.profile_info.modules)
        self.removed_methods: set[str] = set(self.profile_info.missing_methods)
        self.removed_placements: set[str] = set(self.profile_info.missing_placements)
        #: The app's placement handlers (placement.bind), as placement.get answers them.
        self.placements: list[dict[str, Any]] = []
        self.users: dict[int, User] = {1: User(1, "Admin", "Portal", admin=True)}
        #: Every kind of object this portal keeps (b24sim.entities), by kind ("crm.deal", "tasks.task").
        self.entities: dict[str, EntityStore] = {kind: EntityStore(spec) for kind, spec in SPECS.items()}
        self.bindings: list[Binding] = []
        self.offline: list[OfflineRecord] = []
        self.notifications: list[dict[str, Any]] = []
        self.external_calls: dict[str, dict[str, Any]] = {}
        self.app: Installation | None = None
        self.bucket = LeakyBucket(rate[0], rate[1], sim.clock.now)
        self.operating = OperatingTracker()
        self._next_binding = 1
        self._next_offline = 1
        self._message_ids: dict[tuple[str, str], str] = {}

    # -- addresses -------------------------------------------------------------------------------------
    #: Set when the portal listens on its own address (then ``domain`` is that ``host:port``).
    own_url: str | None = None

    @property
    def base_url(self) -> str:
        """The portal's web address inside the simulator (the ``uri`` of the auth server's app.info)."""
        return self.own_url or f"{self._sim.url}/p/{self.domain}"

    @property
    def client_endpoint(self) -> str:
        return f"{self.base_url}/rest/"

    @property
    def rate(self) -> tuple[float, float]:
        return (self.bucket.threshold, self.bucket.drain_per_s)

    @rate.setter
    def rate(self, value: tuple[float, float]) -> None:
        self.bucket.threshold, self.bucket.drain_per_s = value

    def add_incoming_webhook(self, scopes: tuple[str, ...] | list[str], user_id: int = 1) -> str:
        """What an admin creates in Developer resources: ``{client_endpoint}{user_id}/{code}/``."""
        from b24sim.tokens import new_secret

        code = new_secret()
        with self._sim.lock:
            self.incoming_webhooks[code] = (user_id, tuple(scopes))
        return f"{self.client_endpoint}{user_id}/{code}/"

    def add_outgoing_webhook(self, handler_url: str, events: tuple[str, ...] | list[str]) -> str:
        """An outgoing webhook for ``events`` to ``handler_url``; returns its application token."""
        from b24sim.tokens import new_secret

        token = new_secret()
        with self._sim.lock:
            self.outgoing_webhooks.append((handler_url, tuple(e.upper() for e in events), token))
        return token

    def delete_incoming_webhook(self, url: str) -> None:
        code = url.rstrip("/").rsplit("/", 1)[-1]
        with self._sim.lock:
            self.incoming_webhooks.pop(code, None)

    # -- what the portal offers ------------------------------------------------------------------------
    def has_method(self, name: str) -> bool:
        info = METHODS.get(name)
        return info is not None and info.module in self.modules and name not in self.removed_methods

    def has_event(self, name: str) -> bool:
        info = EVENTS.get(name.upper())
        return info is not None and info.module in self.modules

    def has_placement(self, code: str) -> bool:
        info = PLACEMENTS.get(code)
        return info is not None and info.module in self.modules and code not in self.removed_placements

    def placement_names(self, granted: list[str]) -> list[str]:
        """Placements the app may bind here: the portal shows them and the app has their scope."""
        return [
            c for c in PLACEMENTS if self.has_placement(c) and self.scope_allows(PLACEMENTS[c].scope, granted)
        ]

    def remove_placement(self, code: str) -> None:
        """A placement this (older) portal does not have."""
        self.removed_placements.add(code)
        self.placements = [b for b in self.placements if b["placement"] != code]

    def method_names(self) -> list[str]:
        return [name for name in METHODS if self.has_method(name)]

    def event_names(self) -> list[str]:
        return [name for name in EVENTS if self.has_event(name)]

    def scopes(self) -> list[str]:
        """Every scope this portal's modules provide (``scope`` with ``full=true``)."""
        out: list[str] = []
        for module, scopes in MODULE_SCOPES.items():
            if module in self.modules:
                out.extend(s for s in scopes if s not in out)
        return out

    def granted_scopes(self, token_scope: tuple[str, ...] | None = None) -> list[str]:
        """Scopes the app may use here: its own (or the token's) intersected with the portal's."""
        wanted = token_scope if token_scope is not None else (self.app.scope if self.app else ())
        available = self.scopes()
        return [s for s in dict.fromkeys(wanted) if s in available]

    def scope_allows(self, scope: str | None, granted: list[str]) -> bool:
        if scope is None:
            return True
        return any(alias in granted for alias in SCOPE_ALIASES.get(scope, (scope,)))

    def enable_module(self, module: str) -> None:
        """Install/enable a module (e.g. after the box admin installs telephony)."""
        if module not in MODULE_SCOPES:
            raise ValueError(f"unknown module {module!r}")
        with self._sim.lock:
            self.modules.add(module)
            self.removed_methods -= {n for n, m in METHODS.items() if m.module == module}

    def disable_module(self, module: str) -> None:
        """Switch a module off: its methods, events and scopes disappear from this portal."""
        with self._sim.lock:
            self.modules.discard(module)

    def remove_method(self, name: str) -> None:
        """Make one method unknown here (an older module version)."""
        with self._sim.lock:
            self.removed_methods.add(name.lower())

    def restore_method(self, name: str) -> None:
        with self._sim.lock:
            self.removed_methods.discard(name.lower())

    def add_user(self, user_id: int, name: str = "User", *, admin: bool = False) -> User:
        with self._sim.lock:
            user = User(user_id, name, admin=admin)
            self.users[user_id] = user
            return user

    def is_admin(self, user_id: int) -> bool:
        user = self.users.get(user_id)
        return bool(user and user.admin)

    # -- bindings and offline queue (called with sim.lock held) ----------------------------------------
    def new_binding(self, **kwargs: Any) -> Binding:
        binding = Binding(id=self._next_binding, **kwargs)
        self._next_binding += 1
        self.bindings.append(binding)
        return binding

    def record_offline(self, event: str, data: dict[str, Any], connector: str, now: float) -> bool:
        """Keep one record per (queue, event, object): a repeated change refreshes the pending record."""
        object_id = str((data.get("FIELDS") or {}).get("ID", "")) if isinstance(data, dict) else ""
        key = (event, object_id)
        message_id = self._message_ids.setdefault(key, str(len(self._message_ids) + 1))
        for record in self.offline:
            if (
                record.connector == connector
                and record.message_id == message_id
                and not record.process_id
                and not record.error
            ):
                record.timestamp = now
                record.data = data
                return False
        self.offline.append(OfflineRecord(self._next_offline, now, event, data, message_id, connector))
        self._next_offline += 1
        return True

    # -- user actions in the portal UI -----------------------------------------------------------------
    @property
    def deals(self) -> EntityStore:
        return self.entities["crm.deal"]

    def ui_add(self, kind: str, fields: dict[str, Any] | None = None, *, user_id: int | None = 1) -> int:
        """A user creates an object in the UI; ``user_id=None`` plays a robot (no tokens in the event)."""
        spec = SPECS[kind]
        with self._sim.lock:
            object_id = self.entities[kind].add(fields or {}, user_id or 1, self._sim.clock.now())
            self._sim.fire_event(self, spec.add, spec.event_data(spec.add, object_id), user_id=user_id)
            return object_id

    def ui_update(
        self, kind: str, object_id: int, fields: dict[str, Any], *, user_id: int | None = 1
    ) -> None:
        spec = SPECS[kind]
        with self._sim.lock:
            if not self.entities[kind].update(int(object_id), fields, user_id or 1, self._sim.clock.now()):
                raise KeyError(f"{kind} {object_id} not found on {self.domain}")
            self._sim.fire_event(
                self, spec.update, spec.event_data(spec.update, int(object_id)), user_id=user_id
            )

    def ui_delete(self, kind: str, object_id: int, *, user_id: int | None = 1) -> None:
        spec = SPECS[kind]
        with self._sim.lock:
            if not self.entities[kind].delete(int(object_id)):
                raise KeyError(f"{kind} {object_id} not found on {self.domain}")
            self._sim.fire_event(
                self, spec.delete, spec.event_data(spec.delete, int(object_id)), user_id=user_id
            )

    def ui_deal_add(self, fields: dict[str, Any] | None = None, *, user_id: int | None = 1) -> int:
        return self.ui_add("crm.deal", fields, user_id=user_id)

    def ui_deal_update(self, deal_id: int, fields: dict[str, Any], *, user_id: int | None = 1) -> None:
        self.ui_update("crm.deal", deal_id, fields, user_id=user_id)

    def ui_deal_delete(self, deal_id: int, *, user_id: int | None = 1) -> None:
        self.ui_delete("crm.deal", deal_id, user_id=user_id)

    def ui_click_to_call(self, phone: str, *, user_id: int = 1, entity: tuple[str, int] | None = None) -> str:
        """A user clicks a phone number in the CRM: fires ONEXTERNALCALLSTART (telephony module only)."""
        with self._sim.lock:
            call_id = f"externalCall.{secrets.token_hex(16)}.{int(self._sim.clock.now())}"
            data: dict[str, Any] = {
                "PHONE_NUMBER": phone,
                "PHONE_NUMBER_INTERNATIONAL": phone,
                "EXTENSION": "",
                "USER_ID": str(user_id),
                "CALL_LIST_ID": "0",
                "LINE_NUMBER": "",
                "IS_MOBILE": "0",
                "CALL_ID": call_id,
            }
            if entity:
                data["CRM_ENTITY_TYPE"], data["CRM_ENTITY_ID"] = entity[0], str(entity[1])
            self._sim.fire_event(self, "ONEXTERNALCALLSTART", data, user_id=user_id)
            return call_id

    def summary(self) -> dict[str, Any]:
        """Non-secret description (for the control API)."""
        return {
            "domain": self.domain,
            "member_id": self.member_id,
            "profile": self.profile,
            "client_endpoint": self.client_endpoint,
            "installed": bool(self.app and self.app.installed),
            "app_present": self.app is not None,
            "queue_blocked": self.queue_blocked,
            "modules": sorted(self.modules),
            "deals": len(self.deals),
            "objects": {kind: len(store) for kind, store in self.entities.items()},
            "bindings": len(self.bindings),
        }
