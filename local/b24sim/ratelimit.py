"""Request limits of the cloud REST API (limits.md).

* Leaky bucket per portal: each HTTP request adds 1 to a counter that drains by ``Y`` per second; a request
  that would push the counter past ``X`` gets 503 ``QUERY_LIMIT_EXCEEDED``. A ``batch`` is one request.
* Method "operating" time: accumulated execution time per method over a 10-minute window; past the limit
  the method answers 429 ``OPERATION_TIME_LIMIT``. Disabled unless a limit is set (as on a box).

Both read the simulator clock (so ``clock.advance`` drains the bucket); ``scale`` speeds the drain up so
tests need not wait for real seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

OPERATING_WINDOW_S = 600.0


class LeakyBucket:
    """Counter that drains linearly with (simulated, optionally scaled) time."""

    def __init__(self, threshold: float, drain_per_s: float, now: Callable[[], float]) -> None:
        self.threshold = threshold
        self.drain_per_s = drain_per_s
        self._now = now
        self._level = 0.0
        self._last = now()

    def _drain(self, scale: float) -> None:
        now = self._now()
        elapsed = max(0.0, now - self._last)
        self._level = max(0.0, self._level - elapsed * self.drain_per_s * scale)
        self._last = now

    def hit(self, scale: float = 1.0) -> bool:
        """Count one request; ``False`` (and nothing counted) when it would exceed the threshold."""
        self._drain(scale)
        if self._level + 1 > self.threshold:
            return False
        self._level += 1
        return True

    def level(self, scale: float = 1.0) -> float:
        self._drain(scale)
        return self._level

    def reset(self) -> None:
        self._level = 0.0
        self._last = self._now()


@dataclass
class OperatingTracker:
    """Accumulated execution seconds per method inside a sliding 10-minute window."""

    entries: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def _window(self, method: str, now: float) -> list[tuple[float, float]]:
        kept = [(ts, s) for ts, s in self.entries.get(method, []) if ts > now - OPERATING_WINDOW_S]
        self.entries[method] = kept
        return kept

    def add(self, method: str, now: float, seconds: float) -> None:
        self._window(method, now).append((now, seconds))

    def operating(self, method: str, now: float) -> float:
        return sum(s for _, s in self._window(method, now))

    def reset_at(self, method: str, now: float) -> int | None:
        window = self._window(method, now)
        return int(window[0][0] + OPERATING_WINDOW_S) if window else None
