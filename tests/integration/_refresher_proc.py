"""A refresher process that freezes at a chosen point so a test can kill it there (SIGKILL).

``python -m tests.integration._refresher_proc MODE MARKER`` with the table, simulator and portal in the
environment. MODE ``before_save``: the auth server has answered, the new pair is about to be saved.
MODE ``after_save``: the pair is saved, the lease not yet released. The process writes MARKER and
waits to be killed; no ``finally`` of a killed process runs, exactly like a Lambda that timed out.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from b24core.aws.settings import TokenPolicy
from b24core.bitrix.oauth import AuthServer
from b24core.portals.model import Portal
from b24core.portals.store import DynamoPortalStore
from b24core.tokens.keeper import TokenKeeper
from b24core.tokens.lease import DynamoLeaseStore
from b24core.tokens.outcomes import StaticSecret


class FreezingStore:
    def __init__(self, inner: DynamoPortalStore, mode: str, marker: Path, old_refresh: str) -> None:
        self.inner, self.mode, self.marker, self.old_refresh = inner, mode, marker, old_refresh

    def get(self, member_id: str) -> Portal | None:
        return self.inner.get(member_id)

    def list_all(self, limit: int = 1000) -> list[Portal]:
        return self.inner.list_all(limit)

    def save(self, portal: Portal) -> Portal:
        new_pair = portal.refresh_token != self.old_refresh
        if new_pair and self.mode == "before_save":
            self._freeze()
        saved = self.inner.save(portal)
        if new_pair and self.mode == "after_save":
            self._freeze()
        return saved

    def _freeze(self) -> None:
        self.marker.write_text("frozen")
        while True:
            time.sleep(3600)


def main() -> int:
    mode, marker = sys.argv[1], Path(sys.argv[2])
    e = os.environ
    store = DynamoPortalStore(e["T_TABLE"], e["AWS_REGION"], e["T_ENDPOINT"])
    portal = store.get(e["T_MEMBER"])
    assert portal is not None
    keeper = TokenKeeper(
        FreezingStore(store, mode, marker, portal.refresh_token),
        AuthServer(e["T_OAUTH_URL"]),
        e["T_CLIENT_ID"],
        StaticSecret(e["T_SECRET"]),
        DynamoLeaseStore(e["T_TABLE"], e["AWS_REGION"], e["T_ENDPOINT"]),
        TokenPolicy(lease_s=float(e["T_LEASE_S"])),
        allow_insecure_endpoints=True,
    )
    keeper.refresh(portal)
    return 0


if __name__ == "__main__":
    sys.exit(main())
