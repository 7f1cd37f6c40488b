import pytest

from b24core.bitrix.endpoints import EndpointRefused, check_endpoint


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


# ---- resolution: where a connection really goes
import socket  # noqa: E402

import httpcore  # noqa: E402

from b24core.bitrix.endpoints import GuardedBackend  # noqa: E402


def _resolver(*addresses):
    def resolve(host, port, type=0):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.5",
        "127.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "192.168.1.1",
        "0.0.0.0",
        "::1",
        "::ffff:10.0.0.1",
    ],
)
def test_a_name_resolving_to_a_non_public_address_is_never_connected(address):
    backend = GuardedBackend(lambda: False, resolve=_resolver(address))
    with pytest.raises(httpcore.ConnectError, match="not public"):
        backend.connect_tcp("portal.example.com", 443)


def test_one_private_address_among_public_ones_is_enough_to_refuse():
    backend = GuardedBackend(lambda: False, resolve=_resolver("93.184.216.34", "10.1.2.3"))
    with pytest.raises(httpcore.ConnectError, match="not public"):
        backend.connect_tcp("portal.example.com", 443)


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1"])
def test_numeric_spellings_of_loopback_are_resolved_and_refused(host):
    backend = GuardedBackend(lambda: False)  # the system resolver: these need no network
    with pytest.raises(httpcore.ConnectError, match="not public"):
        backend.connect_tcp(host, 80)


def test_the_checked_address_is_the_one_connected():
    resolved: list[str] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def once(host, port, type=0):
            resolved.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

        stream = GuardedBackend(lambda: True, resolve=once).connect_tcp("rebinding.example", port)
        stream.close()
    assert resolved == ["rebinding.example"]  # asked once; the connection went to what was checked
