"""A box whose admin makes it answer badly: the simulator's way to prove tenant isolation.

A box is the customer's own server, so nothing it answers can be trusted: numbers that are not
numbers ("²" passes str.isdigit(), "1e309" is infinite), wrong types, answers that take seconds,
drip a byte at a time, or run to tens of megabytes. ``portal.misbehave`` holds the knobs; the server
applies them to every REST answer of that portal (``POST /_sim/portals/DOMAIN/misbehave``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

#: What a hostile box puts where a number or a time belongs (each a different way to break a parser).
GARBAGE: tuple[Any, ...] = ("²", "1e309", [], {"x": 1}, "-1", "nan", "٣", True, "9" * 40)


@dataclass
class Misbehaviour:
    hostile: bool = False  # garbage in every paging and time field, wrong types
    delay_s: float = 0.0  # seconds before the answer starts
    drip_s: float = 0.0  # seconds between single bytes of the answer
    huge_bytes: int = 0  # the answer padded to this size

    @property
    def active(self) -> bool:
        return self.hostile or self.delay_s > 0 or self.drip_s > 0 or self.huge_bytes > 0


def _garble_time(n: int) -> Any:
    bad = GARBAGE[n % len(GARBAGE)]
    return {"start": bad, "finish": bad, "duration": bad, "operating_reset_at": bad, "date_start": str(bad)}


def garble(payload: Any) -> Any:
    """The answer with every paging and time field replaced by garbage (results themselves kept)."""
    if not isinstance(payload, dict):
        return payload
    out = dict(payload)
    if "total" in out or "result" in out:
        out["total"] = GARBAGE[0]
        out["next"] = GARBAGE[1]
    out["time"] = _garble_time(3)
    result = out.get("result")
    if isinstance(result, dict) and "result" in result:  # a batch
        inner = dict(result)
        keys = list(inner.get("result") or {}) if isinstance(inner.get("result"), dict) else []
        inner["result_total"] = {k: GARBAGE[i % len(GARBAGE)] for i, k in enumerate(keys)} or "²"
        inner["result_next"] = {k: GARBAGE[(i + 1) % len(GARBAGE)] for i, k in enumerate(keys)} or []
        inner["result_time"] = {k: _garble_time(i) for i, k in enumerate(keys)} or "²"
        out["result"] = inner
    return out


class SlowAnswer:
    """An answer the server writes slowly or hugely (see ``server._send``)."""

    def __init__(self, data: bytes, how: Misbehaviour) -> None:
        self.data = data
        self.how = how

    def write(self, handler: Any, status: int) -> None:
        how = self.how
        if how.delay_s > 0:
            time.sleep(how.delay_s)
        data = self.data
        if how.huge_bytes > len(data) and data.endswith(b"}"):
            data = data[:-1] + b', "padding": "' + b" " * (how.huge_bytes - len(data)) + b'"}'
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        try:
            if how.drip_s > 0:
                for i in range(len(data)):
                    handler.wfile.write(data[i : i + 1])
                    handler.wfile.flush()
                    time.sleep(how.drip_s)
            else:
                handler.wfile.write(data)
        except OSError:  # the client gave up: what a bounded client does
            return


def apply(portal: Any, status: int, payload: Any) -> tuple[int, Any]:
    how: Misbehaviour | None = getattr(portal, "misbehave", None)
    if how is None or not how.active or isinstance(payload, str):
        return status, payload
    if how.hostile:
        payload = garble(payload)
    if how.delay_s > 0 or how.drip_s > 0 or how.huge_bytes > 0:
        import json

        return status, SlowAnswer(json.dumps(payload, ensure_ascii=False).encode(), how)
    return status, payload
