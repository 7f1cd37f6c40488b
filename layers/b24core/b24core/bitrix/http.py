"""One pooled HTTP client per process, and requests bounded as a whole.

httpx's timeouts are per read: a box that drips a byte a second is never cut off, and ``resp.json()``
reads any size. Every answer from a portal or the authorization server is therefore streamed under a
deadline for the whole request (connect and every read) and a size cap (``B24_MAX_RESPONSE_BYTES``):
a slow or huge answer costs that portal its own time, never another's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from b24core.aws.version import VERSION
from b24core.bitrix.endpoints import GuardedBackend
from b24core.bitrix.errors import BadResponse, TransportError

USER_AGENT = f"b24-serverless-bundle/{VERSION}"
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
_cache: dict[str, httpx.Client] = {}
#: The process-wide limits, read from the settings on first use (B24_MAX_RESPONSE_BYTES, and
#: B24_ALLOW_INSECURE_ENDPOINTS, which only ever loosens the address guard, in local runs).
limits = {"max_response_bytes": DEFAULT_MAX_BYTES, "allow_private_addresses": 0}
_configured: list[bool] = []


def _configure() -> None:
    """Lazily, so that importing the settings never imports httpx (the intake's cold start)."""
    if _configured:
        return
    from b24core.aws.settings import get_settings

    settings = get_settings()
    limits["max_response_bytes"] = settings.max_response_bytes
    if settings.allow_insecure_endpoints:
        limits["allow_private_addresses"] = 1
    _configured.append(True)


class ResponseTooLarge(BadResponse):
    code = "RESPONSE_TOO_LARGE"


@dataclass(frozen=True)
class Fetched:
    status_code: int
    headers: httpx.Headers
    content: bytes


def http_client(timeout_s: float = 10.0, guarded: bool = True) -> httpx.Client:
    """Reuse connections across warm invocations; redirects are handled by callers on purpose.

    ``guarded``: for addresses that came from requests (portals). The authorization server's address
    is the operator's setting (B24_OAUTH_URL), not a request's, and is left unguarded."""
    _configure()
    key = f"t{timeout_s}g{int(guarded)}"
    client = _cache.get(key)
    if client is None:
        pool = httpx.Limits(max_connections=50, max_keepalive_connections=20)
        transport = httpx.HTTPTransport(limits=pool)
        if guarded:  # every connection resolves once and goes only to a public address it checked
            transport._pool._network_backend = GuardedBackend(lambda: bool(limits["allow_private_addresses"]))
        client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
            follow_redirects=False,
            transport=transport,
        )
        _cache[key] = client
    return client


def fetch(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    timeout_s: float,
    what: str,
    max_bytes: int | None = None,
    **kwargs: Any,
) -> Fetched:
    """The whole answer within ``timeout_s`` and ``max_bytes``, or TransportError / ResponseTooLarge."""
    _configure()
    cap = max_bytes if max_bytes is not None else limits["max_response_bytes"]
    deadline = time.monotonic() + timeout_s
    timeout = httpx.Timeout(timeout_s, connect=min(5.0, timeout_s))
    try:
        with http.stream(method, url, timeout=timeout, **kwargs) as resp:
            declared = resp.headers.get("content-length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > cap:
                raise ResponseTooLarge(f"{what}: answer of {declared} bytes is over the {cap} byte cap")
            if resp.is_stream_consumed:  # an in-memory answer (a transport that already read it)
                if len(resp.content) > cap:
                    raise ResponseTooLarge(f"{what}: answer is over the {cap} byte cap")
                return Fetched(resp.status_code, resp.headers, resp.content)
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_raw():
                size += len(chunk)
                if size > cap:
                    raise ResponseTooLarge(f"{what}: answer is over the {cap} byte cap")
                if time.monotonic() > deadline:
                    raise TransportError(f"{what}: answer not complete within {timeout_s:g} s")
                chunks.append(chunk)
            body = b"".join(chunks)
            encoding = resp.headers.get("content-encoding", "").lower()
            if encoding and encoding != "identity":
                body = _decoded(body, encoding, cap, what)
            return Fetched(resp.status_code, resp.headers, body)
    except httpx.HTTPError as exc:
        raise TransportError(f"{what}: unreachable ({type(exc).__name__})") from None


def _decoded(body: bytes, encoding: str, cap: int, what: str) -> bytes:
    """gzip/deflate bodies, decompressed no further than the cap (a small bomb stays small)."""
    import zlib

    if encoding not in ("gzip", "deflate"):
        raise BadResponse(f"{what}: unsupported content-encoding {encoding!r}")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, cap + 1)
    except zlib.error:
        raise BadResponse(f"{what}: corrupt {encoding} body") from None
    if len(out) > cap or inflater.unconsumed_tail:
        raise ResponseTooLarge(f"{what}: answer is over the {cap} byte cap once decompressed")
    return out
