"""The app manifest the capability tests check portals against, in one place: the check, the runner
and the rollout tests read the same features (the rollout test also needs it as the raw dict a
release ships, to derive the next release's manifest from it)."""

from __future__ import annotations

from typing import Any

from b24core.capabilities.manifest import Manifest

#: As the app's manifest file holds it: a required CRM feature, telephony and notifications.
RAW: dict[str, Any] = {
    "scopes": ["crm", "im", "telephony"],
    "features": {
        "crm": {
            "required": True,
            "module": "crm",
            "scopes": ["crm"],
            "methods": ["crm.deal.get", "crm.deal.list"],
            "events": ["ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE"],
        },
        "telephony": {
            "module": "voximplant",
            "scopes": ["telephony"],
            "methods": ["telephony.externalcall.register"],
            "events": ["ONEXTERNALCALLSTART"],
        },
        "notifications": {"scopes": ["im"], "methods": ["im.notify.system.add"]},
    },
}
MANIFEST = Manifest.from_dict(RAW)
