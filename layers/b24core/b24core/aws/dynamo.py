"""Binding the item classes (pynamodb models) to the app's one table, endpoint and timeouts.

Every store declares its item shape once with ``table_name = "unset"``; the deployment's table, region
and (locally) endpoint are only known from settings, so each store asks for a bound subclass here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, TypeVar, cast

from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
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


class TableItem(Model):
    """An item of the app's one table: addressed by pk (its portal, mostly) and sk (its kind)."""

    class Meta:
        table_name = "unset"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class Gsi1(GlobalSecondaryIndex[Any]):  # type: ignore[no-untyped-call]
    """The table's one index: work to find without a scan (due refreshes, re-checks, polled portals),
    a partition per kind of work (gsi1pk) sorted by when it is due (gsi1sk)."""

    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)
