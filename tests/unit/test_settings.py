import pytest

from b24core.aws.settings import ConfigurationError, Settings


def test_insecure_endpoints_are_refused_in_aws():
    with pytest.raises(ConfigurationError):
        Settings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "f", "B24_ALLOW_INSECURE_ENDPOINTS": "1"})


def test_plain_client_secret_is_refused_in_aws_but_allowed_locally():
    with pytest.raises(ConfigurationError):
        Settings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "f", "B24_CLIENT_SECRET": "x"})
    s = Settings.from_env(
        {
            "AWS_LAMBDA_FUNCTION_NAME": "f",
            "B24_LOCAL": "1",
            "B24_CLIENT_SECRET": "zq-secret-value",
            "B24_ALLOW_INSECURE_ENDPOINTS": "1",
        }
    )
    assert s.allow_insecure_endpoints and s.client_secret == "zq-secret-value"
    assert "zq-secret-value" not in repr(s)


def test_defaults():
    s = Settings.from_env({})
    assert s.oauth_url == "https://oauth.bitrix.info"
    assert not s.allow_insecure_endpoints
