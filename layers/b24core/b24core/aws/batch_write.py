"""Many DynamoDB writes as BatchWriteItem requests of 25, a few requests in flight at once.

The worker's bookkeeping of a batch (the app's writes, read and seen marks) is hundreds of items: one
request per item made DynamoDB, not the portal's REST limit, the worker's pace. Requests of one call
touch distinct items, so they may go out concurrently; items DynamoDB leaves unprocessed (throttling)
are sent again with back-off, and what is still left raises, so the caller can retry its records.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

WRITE_BATCH = 25  # BatchWriteItem's limit of items per request
PARALLEL = 4  # requests in flight per call
ATTEMPTS = 6


class UnprocessedWrites(RuntimeError):
    pass


def batch_write(client: Any, table: str, requests: list[dict[str, Any]], parallel: int = PARALLEL) -> None:
    """Send PutRequest/DeleteRequest entries (each item at most once); raises when some are not written."""
    chunks = [requests[i : i + WRITE_BATCH] for i in range(0, len(requests), WRITE_BATCH)]
    if len(chunks) <= 1 or parallel <= 1:
        for chunk in chunks:
            _send(client, table, chunk)
        return
    with ThreadPoolExecutor(max_workers=min(parallel, len(chunks))) as pool:
        for future in [pool.submit(_send, client, table, chunk) for chunk in chunks]:
            future.result()  # the first failure raises, after every request was tried


def _send(client: Any, table: str, chunk: list[dict[str, Any]]) -> None:
    request: dict[str, Any] = {table: chunk}
    for attempt in range(ATTEMPTS):
        request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
        if not request:
            return
        time.sleep(min(1.0, 0.05 * 2**attempt))  # DynamoDB asks the caller to back off
    raise UnprocessedWrites(f"DynamoDB left {len(request.get(table, []))} writes unprocessed")
