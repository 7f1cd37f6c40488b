"""Per-process wiring: settings → every store, the auth server, the queue, clients. Each is built
once here (and reused warm); no other module constructs a store from settings."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from b24core.app import B24App, load_app
from b24core.aws.secrets import ClientSecret
from b24core.aws.settings import Settings, get_settings
from b24core.bitrix.oauth import AuthServer
from b24core.capabilities.store import DynamoCapabilityStore
from b24core.delivery.audit_store import DynamoAuditStore
from b24core.delivery.known_ids import DynamoKnownIds
from b24core.delivery.store import DynamoDeliveryStore
from b24core.events.queue_writer import QueueWriter
from b24core.portals.app_data import DynamoAppStorage
from b24core.portals.model import Portal
from b24core.portals.sealing import TokenCodec, codec_for
from b24core.portals.store import DynamoPortalStore
from b24core.portals.webhook_store import DynamoWebhookStore
from b24core.tokens.client import PortalClient
from b24core.tokens.keeper import TokenKeeper
from b24core.tokens.lease import DynamoLeaseStore
from b24core.worker.limiter import RateLimit, RateLimiter
from b24core.worker.seen_marks import SeenMarks


@lru_cache(maxsize=1)
def token_codec() -> TokenCodec:
    """KMS envelope when this function was given the TokenKey (template.yaml), else none (never decrypts)."""
    s = get_settings()
    return codec_for(s.token_key_id, lambda: boto_client("kms"), seal_only=s.token_key_seal_only)


@lru_cache(maxsize=1)
def portal_store() -> DynamoPortalStore:
    s = get_settings()
    return DynamoPortalStore(s.table_name, s.region, s.dynamodb_endpoint, token_codec())


@lru_cache(maxsize=1)
def auth_server() -> AuthServer:
    s = get_settings()
    return AuthServer(s.oauth_url, s.http_timeout_s)


def _table() -> tuple[str, str, str | None]:
    """Where every store's items live: the app's one table (name, region, local endpoint)."""
    s = get_settings()
    return s.table_name, s.region, s.dynamodb_endpoint


# The stores of the items beside the portal records, each built once per process.
lease_store = lru_cache(maxsize=1)(lambda: DynamoLeaseStore(*_table()))
capability_store = lru_cache(maxsize=1)(lambda: DynamoCapabilityStore(*_table()))
delivery_store = lru_cache(maxsize=1)(lambda: DynamoDeliveryStore(*_table()))
audit_store = lru_cache(maxsize=1)(lambda: DynamoAuditStore(*_table()))


@lru_cache(maxsize=1)
def token_keeper() -> TokenKeeper:
    s = get_settings()
    return TokenKeeper(
        portal_store(),
        auth_server(),
        s.client_id,
        ClientSecret(s),
        lease_store(),
        s.tokens,
        allow_insecure_endpoints=s.allow_insecure_endpoints,
        uninstall_schedule=capability_store(),
    )


@lru_cache(maxsize=1)
def known_ids() -> DynamoKnownIds:
    return DynamoKnownIds(boto_client("dynamodb"), get_settings().table_name)


@lru_cache(maxsize=1)
def seen_marks() -> SeenMarks:
    return SeenMarks(boto_client("dynamodb"), get_settings().table_name)


@lru_cache(maxsize=1)
def queue_writer() -> QueueWriter:
    """Events into the events queue, ten per request (pulls and polls hand over through it)."""
    return QueueWriter(boto_client("sqs"), get_settings().events_queue_url)


@lru_cache(maxsize=1)
def rate_limiter() -> RateLimiter:
    """Every portal's REST budget, shared by the workers, pulls and polls of all processes."""
    s = get_settings()
    return RateLimiter(boto_client("dynamodb"), s.table_name, RateLimit(s.rate_threshold, s.rate_drain_per_s))


@lru_cache(maxsize=1)
def webhook_store() -> DynamoWebhookStore:
    s = get_settings()
    return DynamoWebhookStore(s.table_name, s.region, s.dynamodb_endpoint, token_codec())


def portal_client(portal: Portal, timeout_s: float | None = None) -> PortalClient:
    """OAuth, or the portal's incoming webhook when one is connected (b24core.trust.webhooks)."""
    conn = webhook_store().get(portal.member_id)
    return PortalClient(
        portal,
        token_keeper(),
        get_settings().http_timeout_s if timeout_s is None else timeout_s,
        webhook=conn.incoming if conn else None,
    )


@lru_cache(maxsize=4)
def boto_client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=get_settings().region)  # type: ignore[call-overload]


def events_url(settings: Settings, request_host: str = "") -> str:
    """Where Bitrix24 sends events: B24_PUBLIC_URL, or the API's own address."""
    base = settings.public_url or (f"https://{request_host}" if request_host else "")
    return f"{base}/events" if base else ""


def app_storage(member_id: str) -> DynamoAppStorage:
    """A portal's app data (b24core.portals.app_data) on the app's table."""
    return DynamoAppStorage(boto_client("dynamodb"), get_settings().table_name, member_id)


@lru_cache(maxsize=1)
def the_app() -> B24App:
    """The app this deployment runs (``B24_APP``), its handlers wired to the portal's app data."""
    app = load_app(get_settings().app)
    app.registry.storage_factory = app_storage
    return app
