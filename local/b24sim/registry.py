"""Shared pieces of the portal REST API: errors, call context, results and the method registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from b24sim.portal import Portal
    from b24sim.simulator import Simulator
    from b24sim.tokens import AccessToken


class RestError(Exception):
    """A documented REST error: ``{"error": code, "error_description": description}`` with an HTTP status.

    Messages never contain token values, so the exception is safe to log.
    """

    def __init__(self, code: str, description: str, status: int = 400) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.status = status

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.description}


def not_found() -> RestError:
    return RestError("ERROR_METHOD_NOT_FOUND", "Method not found!", 404)


def crm_error(description: str) -> RestError:
    # CRM methods answer 400 with an empty error code and the reason in the description.
    return RestError("", description, 400)


@dataclass
class MethodResult:
    result: Any
    total: int | None = None
    next: int | None = None


@dataclass
class CallContext:
    """One method execution: who calls, on which portal, with which parameters."""

    sim: Simulator
    portal: Portal
    token: AccessToken
    params: dict[str, Any]
    in_batch: bool = False

    @property
    def user_id(self) -> int:
        return self.token.user_id

    @property
    def granted(self) -> list[str]:
        return self.portal.granted_scopes(self.token.scope)

    def param(self, name: str, default: Any = None) -> Any:
        """Parameter lookup that ignores case, as the portal does for most methods (``ID``/``id``)."""
        for key in (name, name.lower(), name.upper()):
            if key in self.params:
                return self.params[key]
        lowered = name.lower()
        for key, value in self.params.items():
            if key.lower() == lowered:
                return value
        return default

    def has_param(self, name: str) -> bool:
        return any(key.lower() == name.lower() for key in self.params)

    def fire(self, event: str, data: Any) -> None:
        """Fire an event caused by this call (the calling user is the acting user)."""
        connector = self.param("auth_connector") or ""
        self.sim.fire_event(self.portal, event, data, user_id=self.user_id, connector=str(connector))


Handler = Callable[[CallContext], MethodResult]
HANDLERS: dict[str, Handler] = {}


def method(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler for one or more method names."""

    def register(func: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = func
        return func

    return register


def truthy(value: Any) -> bool:
    """Bitrix-style boolean parameter: true/1/Y are true."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return str(value).strip().lower() in ("1", "true", "y", "yes", "on")


def as_mapping(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and not value:
        return {}
    return None


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]


def php_json(mapping: dict[str, Any]) -> Any:
    """How PHP's json_encode shows an array: ``[]`` when empty, a list for keys 0..n-1, else an object."""
    keys = list(mapping)
    if keys == [str(i) for i in range(len(keys))]:
        return list(mapping.values())
    return mapping
