"""Binding the item classes (pynamodb models) to the app's one table, endpoint and timeouts.

Every store declares its item shape once with ``table_name = "unset"``; the deployment's table, region
and (locally) endpoint are only known from settings, so each store asks for a bound subclass here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TypeVar, cast

from pynamodb.models import Model

M = TypeVar("M", bound=Model)

_TIMEOUTS = {"connect_timeout_seconds": 3, "read_timeout_seconds": 5, "max_retry_attempts": 3}


@lru_cache(maxsize=64)
def _bound(base: type[Model], table_name: str, region: str, host: str | None) -> type[Model]:
    meta = type("Meta", (), {"table_name": table_name, "region": region, "host": host, **_TIMEOUTS})
    return type(base.__name__.lstrip("_"), (base,), {"Meta": meta})


def bind_model(base: type[M], table_name: str, region: str, host: str | None) -> type[M]:
    """``base`` bound to this table (one class per table and endpoint, reused warm)."""
    return cast(type[M], _bound(base, table_name, region, host))
