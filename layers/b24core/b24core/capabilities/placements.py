"""The app's widgets in Bitrix24's UI: which declared placements to bind here, and which to drop.

A placement is bound (``placement.bind``, handler ``PUBLIC_URL/app``) once the check finds its feature
not missing and the portal offering the code (``placement.list``); one the manifest no longer declares
is unbound from our handler (``placement.unbind``), so a new app version never leaves a dead tab
behind. Binding goes into the check's one batch with the event bindings. The platform removes an
uninstalled app's placements itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from b24core.capabilities.manifest import Manifest, Placement

PAGE_ROUTE = "/app"


def page_url(events_url: str) -> str:
    """The pages' handler beside the events handler (both routes of the one HTTP API)."""
    base = events_url[: -len("/events")] if events_url.endswith("/events") else events_url.rstrip("/")
    return base + PAGE_ROUTE if base else ""


@dataclass
class PlacementPlan:
    url: str
    to_bind: list[Placement]
    to_unbind: list[str]
    bound: set[str]
    errors: dict[str, str] = field(default_factory=dict)
    unbound: list[str] = field(default_factory=list)

    @property
    def commands(self) -> dict[str, tuple[str, dict[str, Any]]]:
        out: dict[str, tuple[str, dict[str, Any]]] = {}
        for p in self.to_bind:
            params = {"PLACEMENT": p.code, "HANDLER": self.url, "TITLE": p.title}
            if p.description:
                params["DESCRIPTION"] = p.description
            out[f"place_{p.code}"] = ("placement.bind", params)
        for code in self.to_unbind:
            out[f"unplace_{code}"] = ("placement.unbind", {"PLACEMENT": code, "HANDLER": self.url})
        return out

    def settle(self, results: dict[str, Any], errors: dict[str, Any]) -> None:
        """Record what the batch did; what failed is bound again by the next check."""
        for p in self.to_bind:
            key = f"place_{p.code}"
            if results.get(key) is True or (key in results and results[key] not in (False, None)):
                self.bound.add(p.code)
            else:
                err = errors.get(key)
                self.errors[p.code] = (
                    str(err.get("error") or "ERROR") if isinstance(err, dict) else "NO_ANSWER"
                )
        for code in self.to_unbind:
            if f"unplace_{code}" in results:
                self.unbound.append(code)

    def summary(self) -> dict[str, Any]:
        return {
            "handler": self.url,
            "bound": sorted(self.bound),
            "errors": dict(sorted(self.errors.items())),
            "unbound": sorted(self.unbound),
        }


def plan_placements(
    manifest: Manifest,
    features: dict[str, dict[str, Any]],
    offered: set[str] | None,
    bound_pairs: list[tuple[str, str]] | None,
    url: str,
) -> PlacementPlan | None:
    """What to bind and unbind now; None when the portal could not say what is bound (bind nothing
    blind: a duplicate tab is worse than a tab that comes with the next check)."""
    if not url or bound_pairs is None:
        return None
    ours = {code for code, handler in bound_pairs if handler == url}
    declared = {p.code for p in manifest.placements()}
    to_bind = [
        p
        for f in manifest.features
        if features.get(f.name, {}).get("status") != "missing"
        for p in f.placements
        if p.code not in ours and (offered is None or p.code in offered)
    ]
    return PlacementPlan(url, to_bind, sorted(ours - declared), ours & declared)
