"""Token-custody metrics as CloudWatch EMF lines (Powertools ``single_metric``), written at once.

Each metric is flushed when it happens, so it is emitted whichever function the refresh ran in (the
worker, the sweep, the capability check) without every handler having to flush a metric set. Names
are nouns in past tense; dimensions stay few so an alarm can match them exactly
(``TokenStateEntered`` with ``state=reauth_required`` drives the re-authorization alarm).

Tests and benchmarks swap the sink for a recorder (``record_metrics``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

Sink = Callable[[str, float, str, dict[str, str]], None]


def _emf_sink(name: str, value: float, unit: str, dimensions: dict[str, str]) -> None:
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    from b24core.aws.settings import get_settings

    settings = get_settings()
    dims = {"service": settings.service_name, **dimensions}
    with single_metric(
        name=name,
        unit=MetricUnit(unit),
        value=value,
        namespace=settings.metrics_namespace,
        default_dimensions=dims,
    ):
        pass


_sink: list[Sink] = [_emf_sink]


def emit(name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None:
    """Record one metric value (never raises: a metric must not break a refresh)."""
    with contextlib.suppress(Exception):  # metrics are best effort by design
        _sink[-1](name, value, unit, dimensions)


@dataclass
class Recorded:
    """What a test saw: ``counts[(name, (("dim", "value"), ...))] -> sum``."""

    counts: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, value: float, unit: str, dimensions: dict[str, str]) -> None:
        with self._lock:
            key = (name, tuple(sorted(dimensions.items())))
            self.counts[key] = self.counts.get(key, 0.0) + value

    def total(self, name: str, **dimensions: str) -> float:
        want = set(dimensions.items())
        with self._lock:
            return sum(v for (n, dims), v in self.counts.items() if n == name and want <= set(dims))


@contextmanager
def record_metrics() -> Iterator[Recorded]:
    """Collect metrics in memory instead of printing EMF (tests, benchmarks)."""
    recorded = Recorded()
    _sink.append(recorded.add)
    try:
        yield recorded
    finally:
        _sink.remove(recorded.add)
