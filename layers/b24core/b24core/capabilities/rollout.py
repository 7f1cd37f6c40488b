"""A changed manifest reaches every installed portal, not only the ones that lacked something.

Each saved capability report names the manifest it was checked and bound with (``manifest_fingerprint``).
When the deployed manifest's fingerprint differs from the rollout's, the scheduled re-check walks every
portal through the directory (portals/directory.py: gsi1 Query pages and a BatchGetItem, never a Scan;
OAuth and webhook-connected portals alike) and puts each installed portal whose report has another
fingerprint on the re-check schedule, due now. The ordinary due re-checks then check and
bind them (``event.bind`` for a new event, placements for a new one), a bounded number per run and each
within its portal's REST budget; a portal done carries the new fingerprint. The walk keeps its cursor in
one item, so a run stopped by its time goes on where it stopped, and a rollback's fingerprint simply
starts a walk of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from b24core.capabilities.store import CapabilityStore
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.store import IndexPage

FINGERPRINT = "manifest_fingerprint"


class PortalIndex(Protocol):
    def listed_page(self, limit: int = 100, start_key: dict[str, Any] | None = None) -> IndexPage: ...


def checked_with(portal: Portal) -> str:
    return str((portal.capabilities or {}).get(FINGERPRINT) or "")


def needs_recheck(portal: Portal, fingerprint: str) -> bool:
    """Installed, readable by this release, and last checked with another manifest."""
    return (
        portal.state == PortalState.ACTIVE
        and not portal.newer_release
        and checked_with(portal) != fingerprint
    )


@dataclass
class Rollout:
    portals: PortalIndex
    caps: CapabilityStore
    fingerprint: str
    page_size: int = 100

    def advance(self, now: int, deadline: float | None = None) -> dict[str, Any]:
        """Mark due the next portals of the walk; returns what it did (``done`` once every portal is)."""
        state = self.caps.rollout()
        if state.get("fingerprint") != self.fingerprint:
            state = {"fingerprint": self.fingerprint, "start_key": None, "done": False}
            state["started_at"] = now
        marked = 0
        while not state["done"] and (deadline is None or time.monotonic() < deadline):
            page = self.portals.listed_page(self.page_size, state["start_key"])
            due = [p.member_id for p in page.portals if needs_recheck(p, self.fingerprint)]
            for member_id in due:
                self.caps.schedule_recheck(member_id, now)
            marked += len(due)
            if page.next_key:
                state["start_key"] = page.next_key
            else:
                state.update(done=True, start_key=None, finished_at=now)
            state["marked"] = int(state.get("marked") or 0) + len(due)
            self.caps.save_rollout(state)  # the cursor: a stopped run goes on from here
        return {"fingerprint": self.fingerprint, "marked": marked, "done": bool(state["done"])}
