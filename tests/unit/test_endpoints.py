import pytest

from b24core.endpoints import EndpointRefused, check_endpoint


@pytest.mark.parametrize(
    "url",
    [
        "http://portal.example.com/rest/",
        "https://127.0.0.1/rest/",
        "https://10.1.2.3/rest/",
        "https://localhost/rest/",
        "https://user:pw@portal.example.com/rest/",
        "ftp://portal.example.com/rest/",
        "https://portal.example.com/rest/?x=1",
    ],
)
def test_unsafe_endpoints_are_refused_outside_local_mode(url):
    with pytest.raises(EndpointRefused):
        check_endpoint(url, allow_insecure=False)


def test_public_https_endpoint_passes_and_gets_trailing_slash():
    assert check_endpoint("https://portal.example.com/rest", False) == "https://portal.example.com/rest/"


def test_local_mode_allows_loopback_http():
    assert check_endpoint("http://127.0.0.1:4000/rest/", True) == "http://127.0.0.1:4000/rest/"
