"""Which portal endpoints the app may call.

An endpoint arrives in a request, so before the app sends a token there it must be https on a
public host; local runs (``B24_ALLOW_INSECURE_ENDPOINTS=1``) also accept http and loopback.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


class EndpointRefused(ValueError):
    pass


def check_endpoint(url: str, allow_insecure: bool) -> str:
    """Return the normalised endpoint (ending in '/'), or raise EndpointRefused saying why."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise EndpointRefused("endpoint is not an http(s) URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise EndpointRefused("endpoint must not carry credentials, a query or a fragment")
    if parts.scheme != "https" and not allow_insecure:
        raise EndpointRefused("endpoint must use https")
    host = parts.hostname
    if not allow_insecure:
        if host == "localhost" or host.endswith(".localhost") or host.endswith(".local"):
            raise EndpointRefused("endpoint points at a local host name")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None and (
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_reserved
            or ip.is_multicast
            or ip.is_unspecified
        ):
            raise EndpointRefused("endpoint points at a private or loopback address")
    return url if url.endswith("/") else url + "/"
