"""The app's client_secret: from SSM (cached) in AWS, from the environment only in local runs."""

from __future__ import annotations

from b24core.logs import remember_secret
from b24core.settings import ConfigurationError, Settings


def client_secret(settings: Settings) -> str:
    if settings.local and settings.client_secret:
        remember_secret(settings.client_secret)
        return settings.client_secret
    if not settings.client_secret_param:
        raise ConfigurationError("B24_CLIENT_SECRET_PARAM is not set")
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_parameter(settings.client_secret_param, decrypt=True, max_age=300)
    secret = str(value)
    remember_secret(secret)
    return secret
