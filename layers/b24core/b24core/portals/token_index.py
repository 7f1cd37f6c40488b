"""Where a portal sits in gsi1, by token state, so token work is found by Query and never by Scan.

Partitions (gsi1pk) and their sort keys (gsi1sk = ``{seconds:012d}#{member_id}``):

* ``REFRESH`` — healthy portals, sorted by their keep-alive clock: the last refresh minus a fixed
  per-portal jitter of up to two days (a portal comes due between ``age - 2 days`` and ``age``, never
  later, so the jitter only adds margin to the 180-day refresh-token life). Portals due for a
  keep-alive refresh are exactly ``gsi1sk < now - age``, so the configured age applies at once to
  every portal and a sweep reads only what is due.
* ``RETRY`` — refresh_failing and payment_required portals, sorted by their next attempt.
* ``REAUTH`` / ``GONE`` — reauth_required and uninstalled portals, by when they got there (counted by
  ``b24app tokens status``, never swept).
"""

from __future__ import annotations

import hashlib

from b24core.portals.model import Portal
from b24core.portals.states import PortalState, TokenState

REFRESH = "REFRESH"
RETRY = "RETRY"
REAUTH = "REAUTH"
GONE = "GONE"
PARTITIONS = (REFRESH, RETRY, REAUTH, GONE)
# Portals installed together (a migration, a marketplace launch) must not all come due together.
JITTER_S = 2 * 24 * 3600


def jitter_s(member_id: str) -> int:
    """A stable offset in [0, JITTER_S) derived from the member_id."""
    digest = hashlib.sha256(member_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") % JITTER_S


def keepalive_clock(portal: Portal) -> int:
    return (portal.refreshed_at or portal.installed_at) - jitter_s(portal.member_id)


def sort_key(seconds: int, member_id: str) -> str:
    return f"{max(0, int(seconds)):012d}#{member_id}"


def upper_bound(seconds: int) -> str:
    """The smallest sort key above every key with this many seconds (for ``gsi1sk < bound``)."""
    return f"{max(0, int(seconds)):012d}~"


def index_keys(portal: Portal) -> tuple[str | None, str | None]:
    """(gsi1pk, gsi1sk) for a portal record, or (None, None) when it is in no token partition."""
    token_state = portal.token_state
    if portal.state == PortalState.DELETED or token_state == TokenState.UNINSTALLED:
        return GONE, sort_key(portal.token_state_at or portal.updated_at, portal.member_id)
    if token_state == TokenState.REAUTH_REQUIRED:
        return REAUTH, sort_key(portal.token_state_at or portal.updated_at, portal.member_id)
    if portal.state != PortalState.ACTIVE or not portal.refresh_token:
        return None, None
    if token_state in (TokenState.REFRESH_FAILING, TokenState.PAYMENT_REQUIRED):
        return RETRY, sort_key(portal.next_attempt_at, portal.member_id)
    return REFRESH, sort_key(keepalive_clock(portal), portal.member_id)


def keepalive_due(portal: Portal, now: int, age_s: int) -> bool:
    """True when the portal's keep-alive refresh is due (the same test the index query makes)."""
    return keepalive_clock(portal) < now - age_s
