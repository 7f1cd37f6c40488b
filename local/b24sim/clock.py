"""A controllable clock shared by every part of the simulator.

Token lifetimes (1 hour / 180 days), the leaky bucket and the ``time`` object all read this clock, so a
test can jump forward an hour with ``sim.clock.advance(3600)`` instead of sleeping. The clock still moves
with real time between jumps; that keeps the rate limiter draining naturally while a test runs.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Wall-clock time plus an adjustable offset (seconds)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Current simulated Unix time as a float."""
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move simulated time forward (negative values are refused: time does not run back)."""
        if seconds < 0:
            raise ValueError("the simulated clock only moves forward")
        with self._lock:
            self._offset += seconds

    @property
    def offset(self) -> float:
        """How far simulated time is ahead of real time."""
        with self._lock:
            return self._offset
