"""Self-healing from fresh token pairs Bitrix24 hands over on its own.

A portal whose refresh token died (reauth_required), whose subscription lapsed (payment_required) or
whose refreshes keep failing comes back as soon as Bitrix24 gives the app a new pair and the
authorization server vouches for it. The doors:

* the install page opened again and ONAPPINSTALL — ``b24core.trust.install`` stores the verified pair;
* ONAPPUPDATE — ``b24core.entry.lifecycle.handle_update`` does the same;
* any other event whose ``auth`` carries a ``refresh_token`` (ONOFFLINEEVENT does, offline-events.md):
  ``adopt_from_event`` below, called by the events intake for an event already proven by its
  application_token. It costs nothing for a healthy portal (no call to the authorization server).
"""

from __future__ import annotations

from typing import Any

from b24core.bitrix.inbound import EventAuth
from b24core.tokens.keeper import TokenKeeper
from b24core.tokens.outcomes import RefreshResult


def adopt_from_event(form: dict[str, Any], keeper: TokenKeeper) -> RefreshResult | None:
    """Offer a verified event's token pair to the token keeper; None when the event carries none.

    Call it only after the event proved itself (application_token). The keeper decides whether the
    pair is worth taking (an unhealthy portal, or a due keep-alive with the same user) and checks it at
    the authorization server first.
    """
    auth = EventAuth.of(form)
    pair = auth.offered_pair() if auth is not None else None
    if pair is None:
        return None
    source = str(form.get("event") or "event").upper()
    return keeper.adopt(pair.member_id, pair.access_token, pair.refresh_token, pair.expires_in, source=source)
