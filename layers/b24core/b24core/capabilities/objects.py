"""Listable kinds of objects: how a feature's objects are listed by modification time and by ID, and
which events a change of one stands for.

A manifest feature names its objects (``"objects": ["crm.deal", ...]``) from the catalog the bundle
ships (object_kinds.json, from the REST docs), or declares one in full for a kind the catalog lacks.
The change audit and change polling (b24core.delivery) read these specs; nothing below the manifest
branches on a kind's name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from b24core.bitrix.values import is_digits

PAGE = 50  # rows per page of every *.list method


class ObjectSpecError(ValueError):
    pass


@dataclass(frozen=True)
class ObjectSpec:
    """One listable kind of object."""

    kind: str
    list_method: str  # "list" in the JSON
    add: str
    update: str
    delete: str
    modified: str = "DATE_MODIFY"  # the filter/order field of the modification time
    id: str = "ID"  # the filter/order field of the ID
    created: str = ""  # the filter field of the creation time (tells an add from an update)
    row_modified: str = ""  # the same fields as rows carry them (tasks answer camelCase)
    row_created: str = ""
    row_id: str = ""
    result_key: str = ""  # rows under result[result_key] (tasks) instead of result itself
    event_fields: str = "FIELDS"  # where an event of this kind names the object (tasks: FIELDS_AFTER)

    @property
    def events(self) -> tuple[str, str, str]:
        return (self.add, self.update, self.delete)

    def rows(self, result: Any) -> list[dict[str, Any]]:
        page = result.get(self.result_key) if self.result_key and isinstance(result, dict) else result
        return [r for r in page if isinstance(r, dict)] if isinstance(page, list) else []

    def row_id_of(self, row: dict[str, Any]) -> int | None:
        value = row.get(self.row_id or self.id)
        return int(str(value)) if is_digits(value) else None

    def row_modified_of(self, row: dict[str, Any]) -> str:
        return str(row.get(self.row_modified or self.modified) or "")

    def row_created_of(self, row: dict[str, Any]) -> str:
        return str(row.get(self.row_created or self.created) or "") if self.created else ""

    def select(self) -> list[str]:
        return [self.id, self.modified, *([self.created] if self.created else [])]

    def ids_in(self, low: int, high: int) -> dict[str, Any]:
        """One page of the IDs in [low, high), without counting (``start=-1``,
        settings/performance/huge-data.md): complete when the window is no wider than a page."""
        return {
            "order": {self.id: "ASC"},
            "filter": {f">={self.id}": low, f"<{self.id}": high},
            "select": [self.id],
            "start": -1,
        }

    def ids_after(self, last: int) -> dict[str, Any]:
        """The first page of IDs above ``last`` (where the next existing object is)."""
        return {"order": {self.id: "ASC"}, "filter": {f">{self.id}": last}, "select": [self.id], "start": -1}

    def event_data(self, object_id: int) -> dict[str, Any]:
        return {self.event_fields: {"ID": str(object_id)}}


_REQUIRED = ("list", "add", "update", "delete")
_OPTIONAL = {f.name for f in fields(ObjectSpec)} - {"kind", "list_method", *_REQUIRED}


def spec_from_dict(kind: str, raw: Any, where: str) -> ObjectSpec:
    if not isinstance(raw, dict):
        raise ObjectSpecError(f"{where}: object kind {kind!r} must be an object")
    extra = sorted(set(raw) - {"kind", *_REQUIRED, *_OPTIONAL})
    if extra:
        raise ObjectSpecError(f"{where}: object kind {kind!r}: unknown key(s) {', '.join(extra)}")
    values = {k: raw[k] for k in (*_REQUIRED, *_OPTIONAL) if k in raw}
    missing = [k for k in _REQUIRED if not isinstance(values.get(k), str) or not values[k].strip()]
    if missing:
        raise ObjectSpecError(f"{where}: object kind {kind!r} needs {', '.join(missing)}")
    if not all(isinstance(v, str) for v in values.values()):
        raise ObjectSpecError(f"{where}: object kind {kind!r}: every value must be a string")
    for event in ("add", "update", "delete"):
        values[event] = values[event].strip().upper()
    list_method = values.pop("list").strip().lower()
    return ObjectSpec(kind=kind, list_method=list_method, **values)


@lru_cache(maxsize=1)
def catalog() -> dict[str, ObjectSpec]:
    """The kinds the bundle ships (object_kinds.json)."""
    raw = json.loads(Path(__file__).with_name("object_kinds.json").read_text(encoding="utf-8"))
    return {kind: spec_from_dict(kind, spec, "object_kinds.json") for kind, spec in raw["kinds"].items()}


def objects_of(value: Any, where: str) -> tuple[ObjectSpec, ...]:
    """A feature's ``objects``: catalog names, or full specs ``{"kind": ..., "list": ..., ...}``."""
    if not isinstance(value, list):
        raise ObjectSpecError(f"{where}: 'objects' must be a list of kind names or kind objects")
    out: list[ObjectSpec] = []
    known = catalog()
    for item in value:
        if isinstance(item, str):
            if item not in known:
                raise ObjectSpecError(
                    f"{where}: unknown object kind {item!r} (the bundle ships {', '.join(sorted(known))}; "
                    "declare another in full)"
                )
            out.append(known[item])
        elif isinstance(item, dict) and isinstance(item.get("kind"), str) and item["kind"].strip():
            out.append(spec_from_dict(item["kind"].strip(), item, where))
        else:
            raise ObjectSpecError(f"{where}: each of 'objects' is a kind name or an object with 'kind'")
    kinds = [o.kind for o in out]
    if len(set(kinds)) != len(kinds):
        raise ObjectSpecError(f"{where}: 'objects' repeats a kind")
    return tuple(out)


__all__ = ["PAGE", "ObjectSpec", "ObjectSpecError", "catalog", "objects_of", "spec_from_dict"]
