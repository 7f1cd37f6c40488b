"""The app's storage writes of one worker batch, kept per portal and written together at its end.

A storm's handlers each write a few items (the example mirror: the deal and its history entry). One
PutItem each made the worker's own bookkeeping, not the portal's REST limit, set the pace; kept here
and sent as BatchWriteItem requests of 25 they cost a request per 25 items.

Why this keeps every guarantee:

* Handlers declared idempotent write state, so losing their writes with the process (killed before
  the flush) costs nothing: the records were not deleted from SQS, come back, and run again.
* A batch's records are answered successful only after their portal's writes were flushed; if the
  flush fails, every record whose handlers wrote to that portal is answered failed and comes back.
* A guarded (not idempotent) event's writes are its own (``event_storage``, over its portal's) and
  go out with its guard's completion in one transaction (``commit``; worker/guard_ledger.py), so a
  completed guard never hides an unwritten effect, and an unwritten effect never leaves a completed
  guard. Its keys then leave the portal's buffer: the committed value is the newest.

Reads see the batch's own writes (a handler reading what an earlier event of the batch wrote).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from b24core.portals.app_data import AppStorage, _check_key, _encode


class BufferedAppStorage:
    """An AppStorage whose puts and deletes wait for ``flush``; its reads overlay them."""

    def __init__(self, inner: AppStorage) -> None:
        self.inner = inner
        self._pending: dict[str, str | None] = {}  # key -> encoded value, or None for a delete

    def get(self, key: str) -> dict[str, Any] | None:
        if _check_key(key) in self._pending:
            raw = self._pending[key]
            return None if raw is None else dict(json.loads(raw))
        return self.inner.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._pending[_check_key(key)] = _encode(value)  # a bad value fails in the handler, not later

    def delete(self, key: str) -> None:
        self._pending[_check_key(key)] = None

    def items(self, prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
        merged: dict[str, str | None] = {key: json.dumps(value) for key, value in self.inner.items(prefix)}
        merged.update({k: v for k, v in self._pending.items() if k.startswith(prefix)})
        for key in sorted(merged):
            if merged[key] is not None:
                yield key, dict(json.loads(str(merged[key])))

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> None:
        """Write what is pending (batched where the storage can); kept on failure for the next try."""
        if not self._pending:
            return
        write_all(self.inner, self.writes())
        self._pending.clear()

    def writes(self) -> dict[str, dict[str, Any] | None]:
        """What is pending: key -> value, or None for a delete."""
        return {k: None if v is None else dict(json.loads(v)) for k, v in self._pending.items()}

    def forget(self, keys: Iterable[str]) -> None:
        """These keys were written by someone else since (a guarded event's commit): not pending here."""
        for key in keys:
            self._pending.pop(key, None)


def write_all(storage: AppStorage, writes: Mapping[str, dict[str, Any] | None]) -> None:
    """Batched where the storage can (``write_many``), else one by one."""
    write_many = getattr(storage, "write_many", None)
    if callable(write_many):
        write_many(writes)
        return
    for key, value in writes.items():
        if value is None:
            storage.delete(key)
        else:
            storage.put(key, value)


class BatchWrites:
    """One buffered storage per portal for the length of a worker batch."""

    def __init__(self, factory: Callable[[str], AppStorage] | None) -> None:
        self.factory = factory
        self.buffers: dict[str, BufferedAppStorage] = {}

    def storage(self, member_id: str) -> AppStorage:
        if self.factory is None:
            raise RuntimeError("no app storage is wired for this context")
        if member_id not in self.buffers:
            self.buffers[member_id] = BufferedAppStorage(self.factory(member_id))
        return self.buffers[member_id]

    def event_storage(self, member_id: str) -> BufferedAppStorage:
        """A guarded event's own writes, reading through its portal's (the batch's earlier writes)."""
        return BufferedAppStorage(self.storage(member_id))

    def commit(
        self,
        member_id: str,
        event: BufferedAppStorage | None,
        complete: Callable[[list[dict[str, Any]]], None],
        limit: int,
    ) -> None:
        """A guarded event's writes and its completion (``complete`` gets the writes as TransactWriteItems
        actions and sends them with its own, at most ``limit`` in all). More writes than that, or a
        storage that cannot say them as actions: written first, completed after (the older, weaker
        order: a failure between the two lets the event run again over its written effect). Raises
        when not done; the event's writes are dropped then (its redelivery writes them)."""
        writes = event.writes() if event is not None else {}
        portal = self.buffers[member_id] if writes else None
        actions: list[dict[str, Any]] = []
        if portal is not None:
            make = getattr(portal.inner, "write_actions", None)
            actions = make(writes) if callable(make) else []
            if not actions or len(actions) >= limit:
                write_all(portal.inner, writes)
                actions = []
        complete(actions)
        if portal is not None:
            portal.forget(writes)

    def flush_all(self) -> dict[str, Exception]:
        """Flush every portal's writes; the portals whose flush failed, with the error."""
        failed: dict[str, Exception] = {}

        def flush(member_id: str) -> None:
            try:
                self.buffers[member_id].flush()
            except Exception as exc:  # that portal's records are answered failed and come back
                failed[member_id] = exc

        if len(self.buffers) > 1:  # portals' writes overlap (each portal's own requests go 4 at once)
            with ThreadPoolExecutor(max_workers=min(4, len(self.buffers))) as pool:
                list(pool.map(flush, list(self.buffers)))
        else:
            for member_id in list(self.buffers):
                flush(member_id)
        return failed
