"""Shared setup for token-custody integration tests and benches: a fresh AppTable in DynamoDB Local
(so no other test's portals are swept), the simulator's single-use auth server, a counting hook on
the DynamoDB client, and portals installed into the simulator."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from b24core.aws.settings import TokenPolicy
from b24core.bitrix.oauth import AuthServer
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.store import DynamoPortalStore
from b24core.tokens.keeper import TokenKeeper
from b24core.tokens.lease import DynamoLeaseStore
from b24core.tokens.outcomes import StaticSecret
from b24sim import Simulator
from b24stack.tables import scratch_table

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "tokens.it.app"


def fresh_table(services: Any) -> str:
    """A new, empty table built from template.yaml's AppTable (keys, gsi1)."""
    return scratch_table(services, ROOT / "template.yaml", "tokens")


class OffsetClock:
    """Wall time plus an offset tests can move (the lease and keep-alive logic read it)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class OpCounter:
    """DynamoDB operations seen by one botocore client: name -> count, and items read by queries."""

    ops: Counter[str] = field(default_factory=Counter)
    scanned: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, model: Any = None, parsed: Any = None, **_: Any) -> None:
        with self.lock:
            self.ops[model.name] += 1
            if isinstance(parsed, dict) and "ScannedCount" in parsed:
                self.scanned += int(parsed["ScannedCount"])

    def reset(self) -> None:
        with self.lock:
            self.ops.clear()
            self.scanned = 0


def count_ops(store: DynamoPortalStore) -> OpCounter:
    counter = OpCounter()
    client = store._model._get_connection().connection.client
    client.meta.events.register("after-call.dynamodb", counter)
    return counter


@dataclass
class World:
    sim: Simulator
    secret: str
    table: str
    store: DynamoPortalStore
    leases: DynamoLeaseStore
    clock: OffsetClock
    region: str
    endpoint: str

    def keeper(self, **policy: float) -> TokenKeeper:
        base = TokenPolicy(invalid_grant_grace_s=0.3, wait_s=10.0, lease_s=5.0)
        pol = TokenPolicy(**{**base.__dict__, **policy})  # type: ignore[arg-type]
        return TokenKeeper(
            self.store,
            AuthServer(self.sim.oauth_url, 10.0),
            CLIENT_ID,
            StaticSecret(self.secret),
            self.leases,
            pol,
            clock=self.clock,
            allow_insecure_endpoints=True,
        )

    def install(self, refreshed_at: float | None = None, rate: float = 100_000, **sim_kw: Any) -> Portal:
        """A portal in the simulator with the app installed, and its record in the store."""
        portal = self.sim.add_portal(f"{uuid.uuid4().hex[:10]}.bitrix24.test", rate=(rate, rate), **sim_kw)
        tokens = self.sim.install_silently(portal.domain)
        now = int(self.clock())
        return self.store.save(
            Portal(
                member_id=portal.member_id,
                domain=portal.domain,
                client_endpoint=tokens["client_endpoint"],
                state=PortalState.ACTIVE,
                access_token=tokens["access_token"],
                refresh_token=tokens["refresh_token"],
                access_expires_at=int(tokens["expires"]),
                application_token=tokens["application_token"],
                user_id=str(tokens["user_id"]),
                installed_at=now,
                refreshed_at=int(refreshed_at if refreshed_at is not None else now),
            )
        )

    def token_requests(self, member_id: str) -> list[str]:
        return [
            r.outcome for r in list(self.sim.oauth.requests) if r.kind == "token" and r.member_id == member_id
        ]
