"""The app's client_secret: from SSM or Secrets Manager in AWS (Powertools parameters, cached), from
the environment only in local runs.

``B24_CLIENT_SECRET_PARAM`` names the secret: an SSM parameter (``/b24app/client_secret``, a
SecureString) or a Secrets Manager secret (``secretsmanager:NAME`` or its ARN). Powertools caches the
value for ``B24_SECRET_MAX_AGE_S``; after the authorization server answers ``invalid_client`` (the
secret was rotated) the token keeper asks once more with ``force=True``.
"""

from __future__ import annotations

from b24core.aws.logs import remember_secret
from b24core.aws.settings import ConfigurationError, Settings

_SM_PREFIX = "secretsmanager:"


class ClientSecret:
    """A callable source of the client_secret: ``secret()`` or ``secret(force=True)``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.fetches = 0

    def __call__(self, force: bool = False) -> str:
        s = self.settings
        if s.local and s.client_secret:
            remember_secret(s.client_secret)
            return s.client_secret
        if s.local and not s.client_secret_param:
            raise ConfigurationError("set B24_CLIENT_SECRET for local runs")
        if not s.client_secret_param:
            raise ConfigurationError("B24_CLIENT_SECRET_PARAM is not set")
        from aws_lambda_powertools.utilities import parameters

        self.fetches += 1
        name = s.client_secret_param
        max_age = s.tokens.secret_max_age_s
        if name.startswith(_SM_PREFIX) or name.startswith("arn:aws:secretsmanager:"):
            value = parameters.get_secret(name.removeprefix(_SM_PREFIX), max_age=max_age, force_fetch=force)
        else:
            value = parameters.get_parameter(name, decrypt=True, max_age=max_age, force_fetch=force)
        secret = value.decode() if isinstance(value, bytes) else str(value)
        if not secret:
            raise ConfigurationError(f"the client secret {name} is empty")
        remember_secret(secret)
        return secret


def client_secret(settings: Settings) -> str:
    """The secret now (kept for callers of the first version)."""
    return ClientSecret(settings)()
