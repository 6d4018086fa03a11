"""How the benchmarks time what they measure."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(action: Callable[[], object], repeat: int, prepare: Callable[[], object] | None = None) -> float:
    """The median time of `repeat` calls of `action`, each after an untimed call of `prepare` if given."""
    times = []
    for _ in range(repeat):
        if prepare is not None:
            prepare()
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)
