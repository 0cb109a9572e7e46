# SPDX-License-Identifier: Apache-2.0
"""The timing loop of the Python sides of the benchmarks (tools/bench/*.py), the same as
benchmarks/bench_common.hpp's time_it: one warm-up call, then timed calls until there are `reps`
of them and `min_seconds` have passed (at most `max_reps`)."""
import time


def timed(fn, reps: int, min_seconds: float, warmup=None, max_reps: int = 2000) -> list[float]:
    """Seconds of each timed call of fn(), in call order. `warmup` (default fn) runs first, untimed."""
    (warmup or fn)()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < reps or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if len(times) >= max_reps:
            break
    return times
