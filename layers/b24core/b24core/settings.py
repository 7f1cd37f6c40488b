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
    max_body_bytes: int = 256 * 1024
    # How long a warm EventsFunction trusts its cached application_token (seconds).
    auth_cache_ttl_s: float = 60.0
    http_timeout_s: float = 10.0

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
            client_secret=secret,
            client_secret_param=e.get("B24_CLIENT_SECRET_PARAM", ""),
            oauth_url=(e.get("B24_OAUTH_URL") or DEFAULT_OAUTH_URL).rstrip("/"),
            public_url=(e.get("B24_PUBLIC_URL") or "").rstrip("/"),
            allow_insecure_endpoints=insecure,
            local=local,
            region=e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION") or "us-east-1",
            dynamodb_endpoint=e.get("AWS_ENDPOINT_URL_DYNAMODB") or e.get("AWS_ENDPOINT_URL") or None,
            capability_check_function=e.get("CAPABILITY_CHECK_FUNCTION", ""),
            max_body_bytes=int(e.get("B24_MAX_BODY_BYTES", str(256 * 1024))),
            auth_cache_ttl_s=float(e.get("B24_AUTH_CACHE_TTL_S", "60")),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
