"""PHP bracket notation, both ways.

Bitrix24 is a PHP application: it sends events as ``application/x-www-form-urlencoded`` bodies built like
PHP's ``http_build_query`` (``data[FIELDS][ID]=7``), and it reads form bodies and query strings the way
``parse_str`` does. Apps must cope with exactly that encoding, so the simulator reproduces it instead of
sending JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus, urlencode


def _scalar(value: Any) -> str:
    # http_build_query writes booleans as 1/0; everything else through its string form.
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Flatten nested mappings/sequences into ``(key, value)`` pairs with bracketed keys.

    Like PHP: ``None`` values and empty containers produce no pair at all, list items get numeric indexes.
    """
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, Mapping):
            pairs.extend(flatten(value, name))
        elif isinstance(value, list | tuple):
            pairs.extend(flatten({str(i): item for i, item in enumerate(value)}, name))
        elif value is None:
            continue
        else:
            pairs.append((name, _scalar(value)))
    return pairs


def encode(data: Mapping[str, Any]) -> str:
    """Encode a nested mapping as a PHP-style form body (spaces as ``+``, brackets percent-encoded)."""
    return urlencode(flatten(data))


def _split_key(key: str) -> list[str] | None:
    """``a[b][]`` -> ``["a", "b", ""]``; ``None`` when the key has no usable base name."""
    start = key.find("[")
    if start <= 0:
        return [key] if key and start < 0 else None
    parts = [key[:start]]
    rest = key[start:]
    while rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            # PHP keeps an unterminated bracket as part of the name; we keep the whole key flat instead.
            return [key]
        parts.append(rest[1:end])
        rest = rest[end + 1 :]
    return parts


def _next_index(container: dict[str, Any]) -> str:
    numeric = [int(k) for k in container if k.isdigit() or (k.startswith("-") and k[1:].isdigit())]
    return str(max(numeric) + 1) if numeric else "0"


def _listify(value: Any) -> Any:
    # A PHP array whose keys are exactly 0..n-1 is a list (json_encode agrees), anything else a map.
    if isinstance(value, dict):
        converted = {k: _listify(v) for k, v in value.items()}
        if converted and list(converted) == [str(i) for i in range(len(converted))]:
            return list(converted.values())
        return converted
    return value


def parse(query: str) -> dict[str, Any]:
    """Decode a query string or form body the way PHP's ``parse_str`` does (nested dicts and lists)."""
    pairs = []
    for chunk in query.split("&"):
        if chunk:
            raw_key, _, raw_value = chunk.partition("=")
            pairs.append((unquote_plus(raw_key), unquote_plus(raw_value)))
    return parse_pairs(pairs)


def parse_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Build nested params from already-decoded ``(bracketed key, value)`` pairs (form or multipart)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = _split_key(key)
        if not parts:
            continue
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            name = _next_index(node) if part == "" and i > 0 else part
            if last:
                node[name] = value
            else:
                child = node.get(name)
                if not isinstance(child, dict):
                    child = {}
                    node[name] = child
                node = child
    result = _listify(root)
    return result if isinstance(result, dict) else {}


def json_dumps(value: Any) -> str:
    """Compact JSON, for values Bitrix24 passes as a JSON string inside a form (PLACEMENT_OPTIONS)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
