"""Configuration, read once per process into a typed object.

Nothing else in the code reads ``os.environ``: a setting has one name, one default and one
validation, and tests build a ``Settings`` directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

DEFAULT_OAUTH_URL = "https://oauth.bitrix.info"


class ConfigurationError(RuntimeError):
    """The deployment is misconfigured; refuse to run rather than run unsafely."""


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    table_name: str = "b24app"
    events_queue_url: str = ""
    client_id: str = ""
    #: The app this deployment runs: ``package.module:attribute`` of its B24App (b24core/app.py);
    #: template.yaml sets it from the AppModule parameter.
    app: str = ""
    # Locally the secret may come from the environment; in AWS only through the SSM parameter.
    client_secret: str = field(default="", repr=False)
    client_secret_param: str = ""
    oauth_url: str = DEFAULT_OAUTH_URL
    public_url: str = ""
    allow_insecure_endpoints: bool = False
    local: bool = False
    region: str = "us-east-1"
    dynamodb_endpoint: str | None = None
    capability_check_function: str = ""
    # The function that may write portal records: the internet-facing events function hands it the
    # lifecycle events it verified (ONAPPUPDATE, ONAPPUNINSTALL) and offered token pairs.
    install_function: str = ""
    # How long a user session for the app's pages lives (b24core.trust.session).
    session_ttl_s: int = 900
    max_body_bytes: int = 256 * 1024
    # The largest answer read from a portal or the auth server (b24core.bitrix.http), streamed.
    max_response_bytes: int = 8 * 1024 * 1024
    # How long a warm EventsFunction trusts its cached application_token (seconds).
    auth_cache_ttl_s: float = 60.0
    # A portal's default REST budget (leaky bucket X, Y/s; limits.md); per portal overrides in the table.
    rate_threshold: float = 50.0
    rate_drain_per_s: float = 2.0
    # How long a worker waits for a spent budget before sending the events back with a delay.
    worker_max_wait_s: float = 5.0
    # The share of one worker invocation a portal may take (its reads and handlers); a slow box's other
    # events go back delayed (b24core.worker.dispatch). Also the worker's whole-request REST deadline.
    worker_portal_budget_s: float = 8.0
    metrics_namespace: str = "B24App"
    # First retry delay of a failed event (doubles per receive, up to 15 min; the DLQ takes it after N).
    retry_base_s: float = 10.0
    # How long a failing portal's events (down, 5xx, timeouts, auth server unreachable) keep coming back
    # by delayed requeues before the DLQ takes them (b24core.worker.retry); 0: straight to the old path.
    retry_window_s: float = 6 * 3600.0
    http_timeout_s: float = 10.0
    # Capability re-checks: a portal that lacks something is asked again after this long (boxes
    # update later); when a check could not learn everything, much sooner.
    recheck_interval_s: int = 7 * 24 * 3600
    recheck_soon_s: int = 3600
    # How long the install waits for the capability check before answering the portal's frame.
    check_budget_s: float = 12.0
    # The change audit and change polling (b24core.delivery.audit): see AuditPolicy.
    audit: AuditPolicy = field(default_factory=lambda: AuditPolicy())
    # Token custody (refresh policy, keep-alive sweep, secret cache, metrics): see TokenPolicy.
    tokens: TokenPolicy = field(default_factory=lambda: TokenPolicy())
    # Delivery probe and offline pull (b24core.delivery.probe / offline): see DeliveryPolicy.
    delivery: DeliveryPolicy = field(default_factory=lambda: DeliveryPolicy())
    service_name: str = "b24app"
    # The KMS key that seals tokens at rest (template.yaml: TokenKey), given only to the functions that
    # call Bitrix24; empty elsewhere (those never decrypt; b24core.portals.sealing).
    token_key_id: str = ""
    # EventsFunction may seal the pair an update or a healing event brings, never open one.
    token_key_seal_only: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        local = _flag(e.get("B24_LOCAL"))
        in_aws = bool(e.get("AWS_LAMBDA_FUNCTION_NAME")) and not local
        insecure = _flag(e.get("B24_ALLOW_INSECURE_ENDPOINTS"))
        if insecure and in_aws:
            raise ConfigurationError(
                "B24_ALLOW_INSECURE_ENDPOINTS is for local runs only and is refused in AWS"
            )
        secret = e.get("B24_CLIENT_SECRET", "")
        if secret and in_aws:
            raise ConfigurationError("B24_CLIENT_SECRET must not be set in AWS; use B24_CLIENT_SECRET_PARAM")
        return cls(
            table_name=e.get("TABLE_NAME", "b24app"),
            events_queue_url=e.get("EVENTS_QUEUE_URL", ""),
            client_id=e.get("B24_CLIENT_ID", ""),
            app=e.get("B24_APP", ""),
            client_secret=secret,
            client_secret_param=e.get("B24_CLIENT_SECRET_PARAM", ""),
            oauth_url=(e.get("B24_OAUTH_URL") or DEFAULT_OAUTH_URL).rstrip("/"),
            public_url=(e.get("B24_PUBLIC_URL") or "").rstrip("/"),
            allow_insecure_endpoints=insecure,
            local=local,
            region=e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION") or "us-east-1",
            dynamodb_endpoint=e.get("AWS_ENDPOINT_URL_DYNAMODB") or e.get("AWS_ENDPOINT_URL") or None,
            capability_check_function=e.get("CAPABILITY_CHECK_FUNCTION", ""),
            install_function=e.get("INSTALL_FUNCTION", ""),
            session_ttl_s=max(60, int(_number(e, "B24_SESSION_TTL_S", 900))),
            recheck_interval_s=int(e.get("B24_RECHECK_INTERVAL_S") or 7 * 24 * 3600),
            recheck_soon_s=int(e.get("B24_RECHECK_SOON_S") or 3600),
            check_budget_s=float(e.get("B24_CHECK_BUDGET_S") or 12.0),
            audit=AuditPolicy.from_env(e),
            max_body_bytes=int(e.get("B24_MAX_BODY_BYTES", str(256 * 1024))),
            max_response_bytes=max(64 * 1024, int(_number(e, "B24_MAX_RESPONSE_BYTES", 8 * 1024 * 1024))),
            auth_cache_ttl_s=float(e.get("B24_AUTH_CACHE_TTL_S", "60")),
            rate_threshold=float(e.get("B24_RATE_X", "50")),
            rate_drain_per_s=float(e.get("B24_RATE_Y", "2")),
            worker_max_wait_s=float(e.get("B24_WORKER_MAX_WAIT_S", "5")),
            worker_portal_budget_s=max(1.0, _number(e, "B24_WORKER_PORTAL_BUDGET_S", 8.0)),
            retry_base_s=float(e.get("B24_RETRY_BASE_S", "10")),
            retry_window_s=max(0.0, _number(e, "B24_RETRY_HOURS", 6.0)) * 3600,
            metrics_namespace=e.get("POWERTOOLS_METRICS_NAMESPACE") or "B24App",
            tokens=TokenPolicy.from_env(e),
            delivery=DeliveryPolicy.from_env(e),
            service_name=e.get("POWERTOOLS_SERVICE_NAME") or "b24app",
            token_key_id=e.get("B24_TOKEN_KEY_ID", ""),
            token_key_seal_only=(e.get("B24_TOKEN_KEY_MODE") or "open").strip().lower() == "seal",
        )


DAY_S = 24 * 3600
# A refresh token lives 180 days; a keep-alive age must leave weeks of slack for outages.
MAX_KEEPALIVE_S = 150 * DAY_S


def _number(e: dict[str, str], name: str, default: float) -> float:
    raw = e.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, not {raw!r}") from None


@dataclass(frozen=True)
class TokenPolicy:
    """How tokens are kept alive: when to refresh, how fast, how long to wait for a peer."""

    # Keep-alive: refresh a portal whose refresh token was last renewed longer ago than this.
    keepalive_age_s: int = 30 * DAY_S
    # Never refresh one portal more often than this, except on expired_token.
    min_interval_s: int = DAY_S
    # Keep-alive sweep: parallel refreshes, and the cap of requests per second to the auth server.
    sweep_concurrency: int = 4
    auth_rate_per_s: float = 5.0
    # Single-flight lease on a portal's refresh; a crashed holder blocks it at most this long.
    lease_s: float = 30.0
    # How long a caller that lost the race waits for the winner's new pair before giving up.
    wait_s: float = 10.0
    # After invalid_grant, how long the store is re-read for a pair a peer may be saving.
    invalid_grant_grace_s: float = 3.0
    # Powertools parameters cache for the client_secret (SSM / Secrets Manager).
    secret_max_age_s: int = 300

    @classmethod
    def from_env(cls, e: dict[str, str]) -> TokenPolicy:
        policy = cls(
            keepalive_age_s=int(_number(e, "B24_REFRESH_KEEPALIVE_DAYS", 30) * DAY_S),
            min_interval_s=int(_number(e, "B24_REFRESH_MIN_INTERVAL_HOURS", 24) * 3600),
            sweep_concurrency=int(_number(e, "B24_SWEEP_CONCURRENCY", 4)),
            auth_rate_per_s=_number(e, "B24_AUTH_RATE_PER_S", 5),
            lease_s=_number(e, "B24_REFRESH_LEASE_S", 30),
            wait_s=_number(e, "B24_REFRESH_WAIT_S", 10),
            invalid_grant_grace_s=_number(e, "B24_INVALID_GRANT_GRACE_S", 3),
            secret_max_age_s=int(_number(e, "B24_SECRET_MAX_AGE_S", 300)),
        )
        policy.validate()
        return policy

    def validate(self) -> None:
        if self.min_interval_s < DAY_S:
            raise ConfigurationError("B24_REFRESH_MIN_INTERVAL_HOURS below 24 risks a ban by the auth server")
        if not self.min_interval_s <= self.keepalive_age_s <= MAX_KEEPALIVE_S:
            raise ConfigurationError(
                "B24_REFRESH_KEEPALIVE_DAYS must lie between the minimum interval and 150 days"
            )
        if not 1 <= self.sweep_concurrency <= 64:
            raise ConfigurationError("B24_SWEEP_CONCURRENCY must be between 1 and 64")
        if not 0 < self.auth_rate_per_s <= 100:
            raise ConfigurationError("B24_AUTH_RATE_PER_S must be above 0 and at most 100")
        if self.lease_s <= 0 or self.wait_s < 0 or self.invalid_grant_grace_s < 0:
            raise ConfigurationError("refresh lease and wait times must be positive")


DEFAULT_APP_WORLD_URL = "https://dl.bitrix24.com/webhook/app-world.json"


@dataclass(frozen=True)
class AuditPolicy:
    """How often each portal's changes are audited against what arrived, and what an audit may spend.

    The defaults find a lost event within 10 minutes: a change is judged once it is ``grace_s`` old, by
    the first audit after that (every ``interval_s``, the schedule ticking each minute).
    """

    interval_s: int = 300  # a route with events (online, pull, lossless, outgoing webhook)
    grace_s: int = 120  # how long a change's event may take before it counts as missed
    poll_interval_s: int = 60  # a polled route: the audit is the delivery
    poll_grace_s: int = 60  # ... with an outgoing webhook set: how long its events are awaited
    strikes: int = 2  # consecutive audits with missed changes that switch the route
    overlap_s: int = 120  # each listing starts this long before the cursor (late commits)
    max_pages: int = 10  # pages of changes per kind of object per run (one request each)
    reconcile_s: int = 3600  # how often every ID is listed to find deletions
    reconcile_requests: int = 20  # requests one reconciliation run may spend per kind (4 = one shard)
    round_concurrency: int = 32  # portals a round audits at once (b24core.delivery.fleet)
    round_period_s: float = 60.0  # the schedule's period, which a round must fit in

    @classmethod
    def from_env(cls, e: dict[str, str]) -> AuditPolicy:
        policy = cls(
            interval_s=int(_number(e, "B24_AUDIT_INTERVAL_S", 300)),
            grace_s=int(_number(e, "B24_AUDIT_GRACE_S", 120)),
            poll_interval_s=int(_number(e, "B24_POLL_INTERVAL_S", 60)),
            poll_grace_s=int(_number(e, "B24_POLL_GRACE_S", 60)),
            strikes=int(_number(e, "B24_AUDIT_STRIKES", 2)),
            overlap_s=int(_number(e, "B24_AUDIT_OVERLAP_S", 120)),
            max_pages=int(_number(e, "B24_AUDIT_MAX_PAGES", 10)),
            reconcile_s=int(_number(e, "B24_RECONCILE_S", 3600)),
            reconcile_requests=int(_number(e, "B24_RECONCILE_REQUESTS", 20)),
            round_concurrency=max(1, int(_number(e, "B24_ROUND_CONCURRENCY", 32))),
            round_period_s=max(1.0, _number(e, "B24_ROUND_PERIOD_S", 60.0)),
        )
        policy.validate()
        return policy

    def validate(self) -> None:
        if min(self.interval_s, self.grace_s, self.poll_interval_s, self.poll_grace_s, self.reconcile_s) < 0:
            raise ConfigurationError("audit intervals and grace periods must not be negative")
        if self.strikes < 1:
            raise ConfigurationError("B24_AUDIT_STRIKES must be at least 1")
        if self.overlap_s < 2:
            raise ConfigurationError("B24_AUDIT_OVERLAP_S below 2 s would miss changes of the same second")
        if not 1 <= self.max_pages <= 200:
            raise ConfigurationError("B24_AUDIT_MAX_PAGES must be between 1 and 200")
        if self.reconcile_requests < 4:
            raise ConfigurationError("B24_RECONCILE_REQUESTS below 4 cannot list one ID shard")

    def requests_per_hour(self, kinds: int, polled: bool = False) -> float:
        """What the audit of a quiet portal spends of its REST budget per hour (shown by the CLI and
        the bench): one listing per kind per run, plus the hourly reconciliation's first request."""
        runs = 3600 / max(1, self.poll_interval_s if polled else self.interval_s)
        return kinds * (runs + 3600 / max(1, self.reconcile_s))


@dataclass(frozen=True)
class DeliveryPolicy:
    """How the bundle learns whether events reach it, and how it pulls when they do not."""

    # A probe (event.test) not answered by ONAPPTEST within this long marks delivery blocked.
    # 0 judges it at the next check (tests).
    probe_timeout_s: float = 120.0
    # How often each portal is probed: boxes (firewalls change) every 5 minutes, so a quiet box's
    # blocked queue is found within 10 (docs/delivery.md); cloud portals daily.
    probe_interval_box_s: int = 300
    probe_interval_cloud_s: int = DAY_S
    # A probe that could not be sent (the portal did not answer) is tried again after this long;
    # one sent before the install was finished (BX24.installFinish: no events yet) much sooner.
    probe_retry_s: int = 900
    probe_soon_s: int = 60
    # The published list of the event queue servers (network-access.md), fetched at most once
    # per app_world_ttl_s per process (the docs ask for no more than once a minute).
    app_world_url: str = DEFAULT_APP_WORLD_URL
    app_world_ttl_s: float = 600.0
    # event.offline.get page size, the source key of the app's own writes, ONOFFLINEEVENT pacing.
    pull_batch_size: int = 50
    auth_connector: str = "b24app"
    offline_notify_min_s: int = 5
    # Portals pulled side by side by one scheduled run; single-flight lease per portal's pull.
    pull_concurrency: int = 32
    #: Portals a probe or audit round works on at once, and the period of the rounds' schedules
    #: (delivery/fleet.py reports when the fleet outgrows it).
    round_concurrency: int = 32
    round_period_s: float = 60.0
    pull_lease_s: float = 120.0
    # The function that probes and pulls (async-invoked by the events function on ONAPPTEST /
    # ONOFFLINEEVENT).
    pull_function: str = ""

    @classmethod
    def from_env(cls, e: dict[str, str]) -> DeliveryPolicy:
        policy = cls(
            probe_timeout_s=_number(e, "B24_PROBE_TIMEOUT_S", 120.0),
            probe_interval_box_s=int(_number(e, "B24_PROBE_INTERVAL_BOX_S", 300)),
            probe_interval_cloud_s=int(_number(e, "B24_PROBE_INTERVAL_CLOUD_S", DAY_S)),
            probe_retry_s=int(_number(e, "B24_PROBE_RETRY_S", 900)),
            probe_soon_s=int(_number(e, "B24_PROBE_SOON_S", 60)),
            app_world_url=(e.get("B24_APP_WORLD_URL") or DEFAULT_APP_WORLD_URL).strip(),
            app_world_ttl_s=_number(e, "B24_APP_WORLD_TTL_S", 600.0),
            pull_batch_size=int(_number(e, "B24_PULL_BATCH_SIZE", 50)),
            auth_connector=(e.get("B24_AUTH_CONNECTOR") or "b24app").strip(),
            offline_notify_min_s=int(_number(e, "B24_OFFLINE_NOTIFY_MIN_S", 5)),
            pull_concurrency=int(_number(e, "B24_PULL_CONCURRENCY", 32)),
            round_concurrency=int(_number(e, "B24_ROUND_CONCURRENCY", 32)),
            round_period_s=max(1.0, _number(e, "B24_ROUND_PERIOD_S", 60.0)),
            pull_lease_s=_number(e, "B24_PULL_LEASE_S", 120.0),
            pull_function=e.get("OFFLINE_PULL_FUNCTION", ""),
        )
        policy.validate()
        return policy

    def validate(self) -> None:
        if self.probe_timeout_s < 0 or self.probe_retry_s < 0 or self.probe_soon_s < 0:
            raise ConfigurationError("probe timeouts and retry delays must not be negative")
        if min(self.probe_interval_box_s, self.probe_interval_cloud_s) < 300:
            raise ConfigurationError("probe intervals below 5 minutes would spam the portal's event queue")
        if self.app_world_ttl_s < 60:
            raise ConfigurationError("B24_APP_WORLD_TTL_S below 60: the list may be polled once a minute")
        if not 1 <= self.pull_batch_size <= 1000:
            raise ConfigurationError("B24_PULL_BATCH_SIZE must be between 1 and 1000")
        if not 1 <= self.pull_concurrency <= 128:
            raise ConfigurationError("B24_PULL_CONCURRENCY must be between 1 and 128")
        if not 1 <= self.round_concurrency <= 128:
            raise ConfigurationError("B24_ROUND_CONCURRENCY must be between 1 and 128")
        if not self.auth_connector or len(self.auth_connector) > 64:
            raise ConfigurationError("B24_AUTH_CONNECTOR must be 1..64 characters")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
