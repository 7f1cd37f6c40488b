"""Which portal endpoints the app may call.

An endpoint arrives in a request, so before the app sends a token there it must be https on a
public host; local runs (``B24_ALLOW_INSECURE_ENDPOINTS=1``) also accept http and loopback.

The literal check below is only the first line. What counts is where a connection really goes: a
name can resolve to 10.0.0.5 or 169.254.169.254, an address can be written 2130706433 or 0x7f.1, and
DNS can answer differently the second time it is asked (rebinding). So every connection the bundle
opens resolves the name once, refuses any address that is not globally routable (``is_global``:
private, loopback, link-local, shared 100.64/10, reserved...), and connects to exactly the address it
checked (``GuardedBackend``, installed in every pooled client by ``b24core.bitrix.http``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore


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
        if ip is not None and not_public(ip):
            raise EndpointRefused("endpoint points at a private or loopback address")
    return url if url.endswith("/") else url + "/"


Resolver = Callable[..., list[tuple[Any, ...]]]


def allowed_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return allow_private or ip.is_global


class GuardedBackend(httpcore.SyncBackend):
    """Resolve once, refuse what is not globally routable, connect to the checked address."""

    def __init__(self, allow_private: Callable[[], bool], resolve: Resolver = socket.getaddrinfo) -> None:
        self.allow_private = allow_private
        self.resolve = resolve

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = self.resolve(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve the host ({type(exc).__name__})") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses:
            raise httpcore.ConnectError("the host has no address")
        permitted = self.allow_private()
        if not all(allowed_address(ip, permitted) for ip in addresses):
            raise httpcore.ConnectError("the host resolves to an address that is not public")
        last: Exception | None = None
        for ip in addresses:
            try:
                return super().connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError("no address could be reached")


def not_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Private, loopback, link-local, reserved, multicast or unspecified: never a portal's address."""
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )
