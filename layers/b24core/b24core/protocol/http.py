"""One pooled HTTP client per process, with timeouts and an honest User-Agent."""

from __future__ import annotations

import httpx

from b24core import __version__

USER_AGENT = f"b24-serverless-bundle/{__version__}"
_cache: dict[str, httpx.Client] = {}


def http_client(timeout_s: float = 10.0) -> httpx.Client:
    """Reuse connections across warm invocations; redirects are handled by callers on purpose."""
    key = f"t{timeout_s}"
    client = _cache.get(key)
    if client is None:
        client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)),
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )
        _cache[key] = client
    return client
