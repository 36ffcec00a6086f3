"""Shared timing helper of the benchmark scripts (they run as scripts: ``from _timing import``)."""

import time

import numpy as np


def median_seconds(fn, reps: int) -> float:
    """Median wall-clock seconds of ``reps`` calls of ``fn``, after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
