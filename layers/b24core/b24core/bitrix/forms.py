"""Parse Bitrix24's form-encoded payloads (PHP bracket notation) safely.

Bitrix24 posts events and install frames as ``application/x-www-form-urlencoded`` with nested keys
such as ``data[FIELDS][ID]=5``. The parser is strict about limits because the body comes from the
internet before anything is verified: size, nesting depth and key count are bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl


class FormError(ValueError):
    """The body is not a well-formed form within limits (a client error)."""


@dataclass(frozen=True)
class FormLimits:
    max_bytes: int = 256 * 1024
    max_depth: int = 8
    max_keys: int = 2000


DEFAULT_LIMITS = FormLimits()


def parse_form(body: str | bytes, limits: FormLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Return nested dicts; ``a[]=1&a[]=2`` becomes a list, numeric keys stay strings in dicts."""
    if isinstance(body, bytes):
        if len(body) > limits.max_bytes:
            raise FormError(f"body exceeds {limits.max_bytes} bytes")
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormError("body is not UTF-8") from exc
    elif len(body.encode("utf-8")) > limits.max_bytes:
        raise FormError(f"body exceeds {limits.max_bytes} bytes")
    try:
        pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=False, max_num_fields=limits.max_keys)
    except ValueError as exc:
        raise FormError(f"too many fields (limit {limits.max_keys})") from exc
    result: dict[str, Any] = {}
    for raw_key, value in pairs:
        path = _split_key(raw_key)
        if len(path) > limits.max_depth:
            raise FormError(f"field nesting deeper than {limits.max_depth}")
        if len(path) == 1:
            if isinstance(result.get(raw_key), dict | list):
                raise FormError("field is both a value and a group")
            result[raw_key] = value
        else:
            _assign(result, path, value)
    return result


def _split_key(key: str) -> list[str]:
    """``a[b][c]`` → ``["a", "b", "c"]``; plain names take the fast path (the hot case)."""
    if "[" not in key:
        if "]" in key or not key:
            raise FormError("malformed field name")
        return [key]
    head, _, rest = key.partition("[")
    if not head or "]" in head or not rest.endswith("]"):
        raise FormError("malformed field name")
    parts = rest[:-1].split("][")
    for part in parts:
        if "[" in part or "]" in part:
            raise FormError("malformed field name")
    return [head, *parts]


def _assign(root: dict[str, Any], path: list[str], value: str) -> None:
    node: Any = root
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            if part != "":
                raise FormError("mixed list and map field names")
            if last:
                node.append(value)
                return
            child: Any = [] if path[i + 1] == "" else {}
            node.append(child)
            node = child
            continue
        if last:
            if isinstance(node.get(part), dict | list):
                raise FormError("field is both a value and a group")
            node[part] = value
            return
        existing = node.get(part)
        wanted: type = list if path[i + 1] == "" else dict
        if existing is None:
            existing = wanted()
            node[part] = existing
        elif not isinstance(existing, wanted):
            raise FormError("field is both a value and a group")
        node = existing


def encode_form(data: dict[str, Any]) -> str:
    """The inverse, for tests and the simulator's peers: nested dicts to PHP bracket pairs."""
    from urllib.parse import urlencode

    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}[{k}]" if prefix else str(k), v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(f"{prefix}[]", v)
        else:
            pairs.append((prefix, "" if value is None else str(value)))

    walk("", data)
    return urlencode(pairs)
