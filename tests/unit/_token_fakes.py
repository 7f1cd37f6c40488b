"""Fakes for token-custody unit tests: a single-use authorization server, a fake clock, a portal."""

from __future__ import annotations

import itertools
import threading
from dataclasses import replace

from b24core.aws.settings import TokenPolicy
from b24core.bitrix.errors import InvalidClient, InvalidGrant, PaymentRequired, TransportError
from b24core.bitrix.oauth import AppInfo, InstallInfo, TokenPair
from b24core.portals.model import Portal
from b24core.portals.states import PortalState
from b24core.portals.store import InMemoryPortalStore
from b24core.tokens.keeper import TokenKeeper
from b24core.tokens.lease import InMemoryLeaseStore
from b24core.tokens.outcomes import StaticSecret
from b24core.trust.admin import Caller

CLIENT_ID = "app.unit"
SECRET = "unit-client-secret"
DAY = 24 * 3600
NOW = 1_900_000_000


class FakeClock:
    """Time that only moves when told to (sleep advances it), shared by every thread."""

    def __init__(self, now: float = NOW) -> None:
        self.now = float(now)
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class FakeAuthServer:
    """Refresh tokens work once, as at oauth.bitrix.info; knobs for every failure the issue names."""

    def __init__(self, member_id: str = "m1", endpoint: str = "https://p.example.com/rest/") -> None:
        self.member_id = member_id
        self.endpoint = endpoint
        self.domain = "p.example.com"
        self.client_id = CLIENT_ID
        self.valid: set[str] = set()
        self.access: dict[str, str] = {}  # access token -> user_id
        self.refreshes: list[str] = []  # outcome of each refresh request
        self.app_info_calls = 0
        self.down = False
        self.payment_required = False
        #: The app was removed from the portal: refreshes answer invalid_client, its tokens are dead.
        self.uninstalled = False
        #: The app's client_secret is wrong: every refresh answers invalid_client, tokens still work.
        self.bad_secret = False
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.on_refresh = None  # optional hook(refresh_token) run inside refresh

    def issue(self, user_id: str = "1") -> tuple[str, str]:
        n = next(self._seq)
        access, refresh = f"access-{n:06d}", f"refresh-{n:06d}"
        with self._lock:
            self.valid.add(refresh)
            self.access[access] = user_id
        return access, refresh

    def refresh(self, client_id: str, client_secret: str, refresh_token: str) -> TokenPair:
        if self.on_refresh is not None:
            self.on_refresh(refresh_token)
        if self.down:
            self.refreshes.append("down")
            raise TransportError("auth server unreachable (ConnectError)")
        if self.uninstalled or self.bad_secret:
            self.refreshes.append("invalid_client")
            raise InvalidClient("Application is not installed")
        with self._lock:
            if refresh_token not in self.valid:
                self.refreshes.append("invalid_grant")
                raise InvalidGrant("Invalid refresh token")
            if self.payment_required:
                self.refreshes.append("payment_required")
                raise PaymentRequired("Payment required")
            self.valid.discard(refresh_token)
            self.refreshes.append("ok")
        access, refresh = self.issue()
        return TokenPair(access, refresh, NOW + 3600, self.member_id, self.endpoint, "", "crm", "F", "1")

    def app_info(self, access_token: str) -> AppInfo:
        self.app_info_calls += 1
        if self.down:
            raise TransportError("auth server unreachable")
        user = None if self.uninstalled else self.access.get(access_token)
        if user is None:
            from b24core.bitrix.errors import InvalidToken

            raise InvalidToken("invalid token")
        return AppInfo(
            self.client_id,
            "crm",
            None,
            user,
            InstallInfo(True, self.member_id, self.domain, self.endpoint, "F", "crm", "1", "B", ""),
        )

    @property
    def ok_refreshes(self) -> int:
        return self.refreshes.count("ok")


def portal_admin(endpoint: str, token: str) -> Caller:
    """The portal's answer to user.admin + app.info: the pair is an administrator's."""
    return Caller(admin=True, app_version="1", installed=True)


def policy(**over: float) -> TokenPolicy:
    base = TokenPolicy(invalid_grant_grace_s=0.5, wait_s=5.0, lease_s=30.0)
    return replace(base, **over)  # type: ignore[arg-type]


def make_portal(auth: FakeAuthServer, member_id: str = "m1", refreshed_at: int = NOW, **over) -> Portal:
    access, refresh = auth.issue()
    base = Portal(
        member_id=member_id,
        domain="p.example.com",
        client_endpoint=auth.endpoint,
        state=PortalState.ACTIVE,
        access_token=access,
        refresh_token=refresh,
        application_token="app-token-unit",
        installed_at=refreshed_at,
        refreshed_at=refreshed_at,
        user_id="1",
    )
    return replace(base, **over)


def make_keeper(
    auth: FakeAuthServer | None = None,
    clock: FakeClock | None = None,
    store: InMemoryPortalStore | None = None,
    leases: InMemoryLeaseStore | None = None,
    **policy_over: float,
) -> tuple[TokenKeeper, InMemoryPortalStore, FakeAuthServer, FakeClock, InMemoryLeaseStore]:
    auth = auth or FakeAuthServer()
    clock = clock or FakeClock()
    store = store or InMemoryPortalStore()
    leases = leases or InMemoryLeaseStore()
    keeper = TokenKeeper(
        store,
        auth,
        CLIENT_ID,
        StaticSecret(SECRET),
        leases,
        policy(**policy_over),
        clock=clock,
        sleep=clock.sleep,
        admin_check=portal_admin,
    )
    return keeper, store, auth, clock, leases
