"""What an uninstall does to the app's records, however the bundle learned of it.

Two doors lead here: a verified ONAPPUNINSTALL (``b24core.entry.lifecycle``) and a refresh that the
authorization server refused because the app is gone, confirmed for this portal (``b24core.tokens.keeper``):
events are never retried, so a lost ONAPPUNINSTALL must not leave a portal retried forever. Both end
the same way: the record stays (a reinstall is recognised), its tokens are erased, and with ``clean``
every other item the app keeps for the portal is deleted.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from b24core.portals.model import Portal
from b24core.portals.states import PortalState, TokenState
from b24core.portals.store import PortalStore
from b24core.portals.versioned import StaleWrite

_SAVE_ATTEMPTS = 5


class UninstallSchedule(Protocol):
    """The part of the capability store an uninstall touches."""

    def schedule_recheck(self, member_id: str, due_at: int | None) -> None: ...

    def purge(self, member_id: str) -> int: ...


def mark_uninstalled(
    store: PortalStore,
    member_id: str,
    *,
    clean: bool,
    reason: str,
    schedule: UninstallSchedule | None = None,
    fallback: Portal | None = None,
) -> tuple[Portal | None, int]:
    """(the saved record or None when it was already gone, items purged)."""
    for _ in range(_SAVE_ATTEMPTS):
        current = store.get(member_id) or fallback
        if current is None or current.state == PortalState.DELETED:
            return None, 0
        updated = replace(
            current.with_state(PortalState.DELETED).with_token_state(TokenState.UNINSTALLED),
            access_token="",
            refresh_token="",
            application_token="",
            token_state_reason=reason,
            capabilities={} if clean else current.capabilities,
        )
        try:
            saved = store.save(updated)
        except StaleWrite:
            continue
        purged = 0
        if schedule is not None:
            if clean:
                purged = schedule.purge(member_id)
            else:
                schedule.schedule_recheck(member_id, None)
        return saved, purged
    return None, 0
