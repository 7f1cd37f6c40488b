"""A REST client bound to one portal: reads the stored tokens, refreshes on expiry, retries once."""

from __future__ import annotations

from typing import Any

from b24core.portals.model import Portal
from b24core.portals.states import PortalState, TokenState
from b24core.protocol.errors import ExpiredToken
from b24core.protocol.rest import BATCH_LIMIT, RestAnswer, call_rest
from b24core.tokens import PortalUnavailable, TokenKeeper


class PortalClient:
    def __init__(self, portal: Portal, keeper: TokenKeeper, timeout_s: float = 10.0) -> None:
        self.portal = portal
        self.keeper = keeper
        self.timeout_s = timeout_s

    def _usable(self) -> Portal:
        p = self.portal
        if p.state != PortalState.ACTIVE or p.token_state not in (
            TokenState.ACTIVE,
            TokenState.REFRESH_FAILING,
        ):
            raise PortalUnavailable(f"portal is {p.state}/{p.token_state}")
        return p

    def call_raw(self, method: str, params: dict[str, Any] | None = None) -> RestAnswer:
        portal = self._usable()
        try:
            return call_rest(
                portal.client_endpoint, method, params or {}, portal.access_token, self.timeout_s
            )
        except ExpiredToken:
            self.portal = self.keeper.refresh(portal)
            return call_rest(
                self.portal.client_endpoint, method, params or {}, self.portal.access_token, self.timeout_s
            )

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self.call_raw(method, params).result

    def batch(self, commands: dict[str, tuple[str, dict[str, Any]]], halt: bool = False) -> dict[str, Any]:
        """Run named commands in `batch` requests of up to 50; returns {"result": {...}, "error": {...}}."""
        from urllib.parse import urlencode

        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        items = list(commands.items())
        for start in range(0, len(items), BATCH_LIMIT):
            chunk = items[start : start + BATCH_LIMIT]
            cmd = {key: f"{method}?{urlencode(_flatten(params))}" for key, (method, params) in chunk}
            answer = self.call("batch", {"halt": 1 if halt else 0, "cmd": cmd})
            if isinstance(answer, dict):
                res = answer.get("result")
                err = answer.get("result_error")
                if isinstance(res, dict):
                    results.update(res)
                if isinstance(err, dict):
                    errors.update(err)
        return {"result": results, "error": errors}


def _flatten(params: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            out.extend(_flatten(value, name))
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                if isinstance(v, dict):
                    out.extend(_flatten(v, f"{name}[{i}]"))
                else:
                    out.append((f"{name}[{i}]", str(v)))
        else:
            out.append((name, "" if value is None else str(value)))
    return out
