"""Item schema versions: what an older release does with an item a newer one wrote.

During a canary both releases run, and a rollback leaves items the newer release wrote. Every portal
record carries ``schema`` (``ITEM_SCHEMA`` of the release that saved it; absent = 0, before versioning).
A reader never crashes on what it does not know: an enum value it lacks (a token state a newer
release added) reads as a conservative stand-in, and the value remembers why (``newer_release``).
Such a value is never written back (``NewerItem``): saving it would downgrade the stored item, so the
item survives untouched until the newer release is back. Rules for authors: docs/upgrading.md.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

#: The schema this release writes. Bump it when an older release would misread or drop something of an
#: item this release saves (a new enum value, an attribute older code would lose on save).
ITEM_SCHEMA = 1

E = TypeVar("E", bound=StrEnum)


class NewerItem(RuntimeError):
    """The stored item was written by a newer release: this release must not overwrite it."""

    def __init__(self, member_id: str, why: str) -> None:
        super().__init__(f"item written by a newer release ({why}); left untouched")
        self.member_id = member_id
        self.why = why


def read_enum(kind: type[E], raw: object, stand_in: E, unknown: list[str], name: str) -> E:
    """``raw`` as a ``kind``, or ``stand_in`` (noting ``name`` in ``unknown``) when this release lacks it."""
    try:
        return kind(str(raw))
    except ValueError:
        unknown.append(f"{name}={str(raw)[:40]}")
        return stand_in


def newer_than_this(schema: object, unknown: list[str]) -> str:
    """Why an item is a newer release's (its schema, or the values this release could not read), or ""."""
    try:
        version = int(str(schema)) if schema is not None else 0
    except ValueError:
        version = ITEM_SCHEMA + 1
    reasons = ([f"schema={version}"] if version > ITEM_SCHEMA else []) + unknown
    return ", ".join(reasons)
