"""The app's storage writes of one worker batch, kept per portal and written together at its end.

A storm's handlers each write a few items (the example mirror: the deal and its history entry). One
PutItem each made the worker's own bookkeeping, not the portal's REST limit, set the pace; kept here
and sent as BatchWriteItem requests of 25 they cost a request per 25 items.

Why this keeps every guarantee:

* Handlers declared idempotent write state, so losing their writes with the process (killed before
  the flush) costs nothing: the records were not deleted from SQS, come back, and run again.
* A batch's records are answered successful only after their portal's writes were flushed; if the
  flush fails, every record whose handlers wrote to that portal is answered failed and comes back.
* A guarded (not idempotent) handler's writes are flushed before its guard records it completed
  (``flush`` inside the guarded call), so a completed guard never hides an unwritten effect.

Reads see the batch's own writes (a handler reading what an earlier event of the batch wrote).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
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

    def discard(self) -> None:
        self._pending.clear()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> None:
        """Write what is pending (batched where the storage can); kept on failure for the next try."""
        if not self._pending:
            return
        writes = {k: None if v is None else dict(json.loads(v)) for k, v in self._pending.items()}
        write_many = getattr(self.inner, "write_many", None)
        if callable(write_many):
            write_many(writes)
        else:
            for key, value in writes.items():
                if value is None:
                    self.inner.delete(key)
                else:
                    self.inner.put(key, value)
        self._pending.clear()


class BatchWrites:
    """One buffered storage per portal for the length of a worker batch."""

    def __init__(self, factory: Callable[[str], AppStorage] | None) -> None:
        self.factory = factory
        self.buffers: dict[str, BufferedAppStorage] = {}
        self.failed: dict[str, Exception] = {}  # portals whose writes failed in this batch

    def storage(self, member_id: str) -> AppStorage:
        if self.factory is None:
            raise RuntimeError("no app storage is wired for this context")
        if member_id not in self.buffers:
            self.buffers[member_id] = BufferedAppStorage(self.factory(member_id))
        return self.buffers[member_id]

    def flush(self, member_id: str) -> None:
        """Write one portal's pending writes now (inside a guard). If that fails they are dropped, not
        written later: the guard lets its event go again, which must not find its effect written; the
        portal's records are all answered failed and come back."""
        buffer = self.buffers.get(member_id)
        if buffer is None:
            return
        try:
            buffer.flush()
        except Exception as exc:
            buffer.discard()
            self.failed[member_id] = exc
            raise

    def flush_all(self) -> dict[str, Exception]:
        """Flush every portal's writes; the portals whose flush failed, with the error."""
        failed: dict[str, Exception] = dict(self.failed)

        def flush(member_id: str) -> None:
            if member_id in failed:
                self.buffers[member_id].discard()  # its records are answered failed anyway
                return
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
