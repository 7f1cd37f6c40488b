"""Versioned items: every save names the version it read, so two Lambdas never silently overwrite
each other; the loser gets ``StaleWrite``, reads again and decides again (``update``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar, Generic, Protocol, TypeVar


class StaleWrite(RuntimeError):
    """Somebody else saved the portal since we read it; re-read and decide again."""


T = TypeVar("T")


def update(
    read: Callable[[], T | None],
    save: Callable[[T], T],
    change: Callable[[T | None], T | None],
    key: str,
    attempts: int = 8,
) -> T | None:
    """The one optimistic read-modify-save: read, ``change`` (a pure function of what was read), save
    with the version read; on a stale write read again and decide again. ``change`` returning None, or
    the value it was given, leaves the stored value alone (and returns it). Every store's items carry a
    version, so two Lambdas can never silently overwrite each other."""
    for _ in range(attempts):
        current = read()
        updated = change(current)
        if updated is None or updated == current:
            return current
        try:
            return save(updated)
        except StaleWrite:
            continue
    raise StaleWrite(key)


class Versioned(Protocol):
    """A frozen dataclass with the portal it belongs to and the version it was read at (0: new)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def member_id(self) -> str: ...

    @property
    def version(self) -> int: ...


S = TypeVar("S", bound=Versioned)


class InMemoryStateStore(Generic[S]):
    """The same optimistic rule in memory, for unit tests."""

    def __init__(self) -> None:
        self._items: dict[str, S] = {}
        self._lock = threading.Lock()

    def get(self, member_id: str) -> S | None:
        with self._lock:
            return self._items.get(member_id)

    def save(self, state: S) -> S:
        with self._lock:
            current = self._items.get(state.member_id)
            if (current.version if current else 0) != state.version:
                raise StaleWrite(state.member_id)
            saved = replace(state, version=state.version + 1)
            self._items[state.member_id] = saved
            return saved
