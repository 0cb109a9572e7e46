// SPDX-License-Identifier: Apache-2.0
// One OpenMP parallel region with the thread id and the thread count actually granted; runs
// inline when OpenMP is off or one thread is asked for.
#pragma once

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tessera::backend::cpu_detail {

/// Calls f(thread_id, n_threads) on up to `threads` threads. f must not throw.
template <class F>
void parallel_region(int threads, F&& f) {
#if defined(_OPENMP)
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    f(omp_get_thread_num(), omp_get_num_threads());
    return;
  }
#endif
  f(0, 1);
}

/// [begin, end) of part t of n items split into T nearly equal contiguous parts, in units of `grain`.
struct range {
  long long begin, end;
};
[[nodiscard]] inline range split(long long n, int t, int T, long long grain = 1) noexcept {
  long long const units = (n + grain - 1) / grain;
  long long const b = units * t / T * grain, e = units * (t + 1) / T * grain;
  return {b < n ? b : n, e < n ? e : n};
}

}  // namespace tessera::backend::cpu_detail
